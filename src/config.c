/* STUB — being replaced. */
#include "config.h"

int tl_config_load(tl_config *c, int scope, int argc, char **argv, char ***rest, int *n_rest,
                   tl_err *err)
{
    return TL_EINVAL;
}

void tl_config_fini(tl_config *c)
{
    
}

void tl_config_print_help(FILE *f, int scope)
{
    
}

const tl_project_conf *tl_config_project(const tl_config *c, const char *name)
{
    return NULL;
}

void tl_config_add_project(tl_config *c, const tl_project_conf *p)
{
    
}
