/* SPDX-License-Identifier: MIT */
/*
 * The web page of fwire serve (tools/web/), embedded at build time: serve_embed.c writes
 * serve_assets.c from the files, so the binary serves them without reading the disk.
 */
#ifndef FWIRE_SERVE_ASSETS_H
#define FWIRE_SERVE_ASSETS_H

#include <stddef.h>

typedef struct gw_asset_s {
    const char *path;  /* "/index.html" */
    const char *ctype; /* "text/html; charset=utf-8" */
    const unsigned char *data;
    size_t len;
} gw_asset_t;

extern const gw_asset_t gw_assets[];
extern const size_t gw_nassets;

#endif /* FWIRE_SERVE_ASSETS_H */
