/* The command line: serve, import, export, query, report. */
#ifndef TL_CLI_H
#define TL_CLI_H

/* Each returns the process exit status. argv[0] is the command name. */
int tl_cli_serve(int argc, char **argv);
int tl_cli_import(int argc, char **argv);
int tl_cli_export(int argc, char **argv);
int tl_cli_query(int argc, char **argv);
int tl_cli_report(int argc, char **argv);

#endif
