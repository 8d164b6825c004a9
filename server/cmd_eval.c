/* placeholder: being written */
#include "cli.h"

const char cmd_eval_help[] = "not built yet\n";
int cmd_eval(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_usage_error("not built yet");
}
