/* tally: self-hosted product analytics in one program. main() only dispatches. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tally COMMAND [flags]\n\n"
               "commands:\n"
               "  serve    run the server (ingestion, queries, dashboard)\n"
               "  import   load events from NDJSON files or stdin into a data directory or server\n"
               "  export   write stored events as NDJSON\n"
               "  query    run a JSON query against a data directory or a server\n"
               "  report   write a day, week or month report (HTML, CSV) of a project\n\n"
               "`tally COMMAND --help` describes every flag of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return tl_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "import")) return tl_cli_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return tl_cli_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "query")) return tl_cli_query(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return tl_cli_report(argc - 1, argv + 1);
    fprintf(stderr, "tally: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
