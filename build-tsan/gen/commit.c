#include "cli_version.h"
const char consulate_commit[] = "5d2529b843e0";
