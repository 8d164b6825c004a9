/* placeholder: being written */
#include "cli.h"

const char cmd_align_help[] = "not built yet\n";
int cmd_align(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_usage_error("not built yet");
}
