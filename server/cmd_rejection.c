/* placeholder: being written */
#include "cli.h"

const char cmd_rejection_sample_help[] = "not built yet\n";
int cmd_rejection_sample(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_usage_error("not built yet");
}
const char cmd_distill_help[] = "not built yet\n";
int cmd_distill(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return cli_usage_error("not built yet");
}
