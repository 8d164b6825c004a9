/* admin_http.c - one admin request to `r1d serve` over libcurl's easy
 * interface (admin_http.h). Every request gets its own easy handle: the
 * admin commands make a handful of requests (a watch polls twice a second),
 * so connection reuse is not worth the state it would need. The body of the
 * answer is collected in an r1d_buf, capped so that a wrong --url cannot
 * make the client read without end. */
#include "admin_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "../common/buf.h"

/* No admin answer comes near this; a stream that does is not r1d. */
#define ADMIN_MAX_RESPONSE ((size_t)256 << 20)

int admin_http_init(r1d_error *err) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return r1d_fail(err, R1D_ENOMEM, "cannot initialise libcurl");
  return 0;
}

void admin_http_cleanup(void) {
  curl_global_cleanup();
}

typedef struct sink {
  r1d_buf b;
  int too_big;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
  sink *s = user;
  size_t bytes = size * n;
  if (s->b.n + bytes > ADMIN_MAX_RESPONSE) {
    s->too_big = 1;
    return 0; /* libcurl stops with CURLE_WRITE_ERROR */
  }
  /* one spare byte for the NUL added at the end */
  if (r1d_buf_reserve(&s->b, bytes + 1)) return 0;
  memcpy(s->b.p + s->b.n, p, bytes);
  s->b.n += bytes;
  return bytes;
}

/* base + path, without a doubled '/'. */
static char *join_url(const char *base, const char *path) {
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/')
    n--;
  size_t total = n + strlen(path) + 1;
  char *url = malloc(total);
  if (url) snprintf(url, total, "%.*s%s", (int)n, base, path);
  return url;
}

/* The failures where the server was never talked to. */
static int is_unreachable(CURLcode rc) {
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
         rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_OPERATION_TIMEDOUT ||
         rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_GOT_NOTHING ||
         rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR;
}

/* The request's headers; NULL when out of memory. */
static struct curl_slist *make_headers(const admin_conn *c, const char *body,
                                       const char *content_type) {
  struct curl_slist *h = NULL, *next;
  char line[1024];
  /* libcurl sends "Expect: 100-continue" before large bodies and waits for
   * it; an empty Expect: sends the body at once */
  if (!(next = curl_slist_append(h, "Expect:"))) goto fail;
  h = next;
  if (!(next = curl_slist_append(h, "Accept: application/json"))) goto fail;
  h = next;
  if (body && content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    if (!(next = curl_slist_append(h, line))) goto fail;
    h = next;
  }
  if (c->admin_key && c->admin_key[0]) {
    int n =
        snprintf(line, sizeof line, "Authorization: Bearer %s", c->admin_key);
    if (n < 0 || (size_t)n >= sizeof line) goto fail;
    if (!(next = curl_slist_append(h, line))) goto fail;
    h = next;
  }
  return h;
fail:
  curl_slist_free_all(h);
  return NULL;
}

int admin_request(const admin_conn *c, const char *method, const char *path,
                  const char *body, size_t len, const char *content_type,
                  long *status, char **resp, size_t *resp_len, r1d_error *err) {
  *resp = NULL;
  *resp_len = 0;
  *status = 0;
  char errbuf[CURL_ERROR_SIZE] = "";
  sink s = {0};
  int rc = 0;
  char *url = join_url(c->url, path);
  struct curl_slist *headers = make_headers(c, body, content_type);
  CURL *h = url && headers ? curl_easy_init() : NULL;
  if (!h) {
    rc = r1d_fail(err, R1D_ENOMEM,
                  "out of memory (or an admin key of "
                  "1000 bytes or more)");
    goto done;
  }
  curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string form */
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)ADMIN_CONNECT_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)ADMIN_TOTAL_TIMEOUT_S);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "r1d-admin/" R1D_VERSION);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    /* POST and PUT carry a body, an empty one when there is none */
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(body ? len : 0));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode cr = curl_easy_perform(h);
  const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cr);
  if (cr == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  } else if (s.too_big) {
    rc = r1d_fail(err, R1D_EIO, "%s %s: the answer is over %zu MiB", method,
                  url, ADMIN_MAX_RESPONSE >> 20);
  } else if (cr == CURLE_WRITE_ERROR) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s %s: out of memory", method, url);
  } else if (cr == CURLE_URL_MALFORMAT || cr == CURLE_UNSUPPORTED_PROTOCOL) {
    rc = r1d_fail(err, R1D_EINVAL, "bad URL %s: %s", c->url, why);
  } else if (is_unreachable(cr)) {
    rc = r1d_fail(err, R1D_EIO, "cannot reach %s: %s", c->url, why);
  } else {
    rc = r1d_fail(err, R1D_EIO, "%s %s: %s", method, url, why);
  }
  if (rc == 0) {
    if (r1d_buf_reserve(&s.b, 1)) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    } else {
      s.b.p[s.b.n] = '\0';
      *resp = s.b.p;
      *resp_len = s.b.n;
      s.b = (r1d_buf){0};
    }
  }
done:
  r1d_buf_free(&s.b);
  if (h) curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  free(url);
  return rc;
}

char *admin_escape(const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *out = malloc(3 * n + 1), *o = out;
  if (!out) return NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                (*p >= '0' && *p <= '9') || strchr("-._~", *p);
    if (plain) {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = '\0';
  return out;
}
