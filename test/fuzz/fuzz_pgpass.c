/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the passfile matcher. Input layout: four lines give host, port, dbname
 * and user (the key); the rest is the file. The match, if any, must be a prefix-free copy that we
 * free; nothing may crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conninfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *key[4] = {NULL, NULL, NULL, NULL};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t n = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
        key[i] = malloc(n + 1);
        if (key[i] == NULL)
            goto out;
        memcpy(key[i], data + off, n);
        key[i][n] = '\0';
        off += nl != NULL ? n + 1 : n;
    }
    /* the file bytes get their own allocation so ASan sees any read past them */
    size_t flen = size - off;
    char *file = malloc(flen ? flen : 1);
    if (file == NULL)
        goto out;
    memcpy(file, data + off, flen);
    char *pw = NULL;
    int rc = fw__pgpass_lookup(file, flen, key[0], key[1], key[2], key[3], &pw);
    if (rc == 1) {
        if (pw == NULL || strlen(pw) > flen)
            abort();
        fw__pgpass_secret_free(pw);
    } else if (pw != NULL) {
        abort();
    }
    free(file);
out:
    for (int i = 0; i < 4; i++)
        free(key[i]);
    return 0;
}
