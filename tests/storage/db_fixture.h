/* db_fixture.h - what the storage tests share: a fresh database folder
 * under /tmp per test (cmocka setup/teardown) and an open without fsync,
 * which tests need not pay for. Included after cmocka.h by one test file
 * each (static functions: no link-time sharing needed). */
#ifndef R1D_TESTS_STORAGE_DB_FIXTURE_H
#define R1D_TESTS_STORAGE_DB_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "storage/db.h"

typedef struct fixture {
  char dir[64];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-test-db-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

static r1d_db *open_db(fixture *f, size_t map, size_t cap) {
  r1d_db_options o = {.map_size = map, .map_max = cap, .no_sync = 1};
  r1d_db *db = NULL;
  r1d_error err = {0};
  int rc = r1d_db_open(f->dir, &o, &db, &err);
  if (rc) fprintf(stderr, "open: %s\n", err.msg);
  assert_int_equal(rc, 0);
  return db;
}

#endif
