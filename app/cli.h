/* cli.h: the subcommands of the loraplex binary. Each takes argv starting at
 * its own name and returns the process exit status. */
#ifndef LP_CLI_H
#define LP_CLI_H

int cli_generate(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_devices(int argc, char **argv);
int cli_serve(int argc, char **argv);

#endif
