/* SPDX-License-Identifier: MIT */
/* Error names and messages, generated from FW_ERRNO_MAP (STYLE 8). */
#include "fwire.h"

#include <uv.h>

/* libuv owns every code above our block; it answers "Unknown system error" for junk. */
static int is_fw_code(int err)
{
    return err <= -30000 && err > -31000;
}

const char *fw_err_name(int err)
{
    switch (err) {
#define FW__ERR_NAME(name, value, msg) \
    case (value):                      \
        return "FW_" #name;
        FW_ERRNO_MAP(FW__ERR_NAME)
#undef FW__ERR_NAME
    default:
        break;
    }
    if (err < 0 && !is_fw_code(err))
        return uv_err_name(err);
    /* fw_stream_next's non-negative results reach the same printers as its failures */
    switch (err) {
    case FW_END:
        return "FW_END";
    case FW_ROW:
        return "FW_ROW";
    case FW_AGAIN:
        return "FW_AGAIN";
    default:
        return "FW_EUNKNOWN";
    }
}

const char *fw_strerror(int err)
{
    switch (err) {
#define FW__ERR_MSG(name, value, msg) \
    case (value):                     \
        return msg;
        FW_ERRNO_MAP(FW__ERR_MSG)
#undef FW__ERR_MSG
    default:
        break;
    }
    if (err < 0 && !is_fw_code(err))
        return uv_strerror(err);
    switch (err) {
    case FW_END:
        return "end of stream: every row was delivered";
    case FW_ROW:
        return "a row is ready";
    case FW_AGAIN:
        return "no row yet";
    default:
        return "unknown error code";
    }
}

unsigned int fw_version(void)
{
    return FW_VERSION_HEX;
}

const char *fw_version_string(void)
{
#define FW__STR2(x) #x
#define FW__STR(x)  FW__STR2(x)
    return FW__STR(FW_VERSION_MAJOR) "." FW__STR(FW_VERSION_MINOR) "." FW__STR(FW_VERSION_PATCH);
#undef FW__STR
#undef FW__STR2
}
