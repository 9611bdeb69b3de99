/* STUB — being replaced. */
#include "cli.h"

int tl_cli_serve(int argc, char **argv)
{
    return 2;
}

int tl_cli_import(int argc, char **argv)
{
    return 2;
}

int tl_cli_export(int argc, char **argv)
{
    return 2;
}

int tl_cli_query(int argc, char **argv)
{
    return 2;
}
