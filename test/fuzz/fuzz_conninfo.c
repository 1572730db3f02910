/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for connection strings: both syntaxes, the environment step with an
 * environment taken from the input, validation, and fw__conninfo_set. Nothing may crash or leak,
 * every message must be NUL-terminated inside its buffer, and a password given as a whole
 * keyword=value word must never appear in a message.
 *
 * Input layout: byte 0 picks the steps; the rest, up to an optional 0xff byte, is the string;
 * after 0xff come "NAME=value" lines used as the environment.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conninfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fenv_s {
    char *vars[8];
    size_t n;
} fenv_t;

static const char *fenv_get(void *ud, const char *name)
{
    const fenv_t *e = ud;
    size_t len = strlen(name);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->vars[i], name, len) == 0 && e->vars[i][len] == '=')
            return e->vars[i] + len + 1;
    return NULL;
}

static void check_message(const char *err, size_t errlen)
{
    if (memchr(err, '\0', errlen) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    const uint8_t *sep = memchr(data, 0xff, size);
    size_t slen = sep != NULL ? (size_t)(sep - data) : size;
    char *str = malloc(slen + 1);
    if (str == NULL)
        return 0;
    memcpy(str, data, slen);
    str[slen] = '\0';

    fenv_t fe = {{NULL}, 0};
    char *envbuf = NULL;
    if (sep != NULL) {
        size_t elen = size - slen - 1;
        envbuf = malloc(elen + 1);
        if (envbuf == NULL) {
            free(str);
            return 0;
        }
        memcpy(envbuf, sep + 1, elen);
        envbuf[elen] = '\0';
        for (char *line = envbuf; line != NULL && fe.n < 8;) {
            char *nl = strchr(line, '\n');
            if (nl != NULL)
                *nl = '\0';
            fe.vars[fe.n++] = line;
            line = nl != NULL ? nl + 1 : NULL;
        }
    }

    char err[FW__CONNINFO_ERRLEN];
    memset(err, 'Z', sizeof(err));
    fw__conninfo_t *ci = NULL;
    int rc = fw__conninfo_parse(str, &ci, err, sizeof(err));
    if (rc != 0) {
        check_message(err, sizeof(err));
        /* " password=WORD " where WORD occurs once in the input and looks like a password
         * (8+ bytes, with a digit, an upper- and a lower-case letter, so no word of our fixed
         * texts): WORD must not show in the message. */
        const char *p = strstr(str, " password=");
        if (p != NULL) {
            p += 10;
            size_t w = strcspn(p, " \t\n\r\v\f'\\");
            bool digit = false, upper = false, lower = false;
            for (size_t i = 0; i < w; i++) {
                digit |= p[i] >= '0' && p[i] <= '9';
                upper |= p[i] >= 'A' && p[i] <= 'Z';
                lower |= p[i] >= 'a' && p[i] <= 'z';
            }
            if (w >= 8 && w < 64 && digit && upper && lower) {
                char word[64];
                memcpy(word, p, w);
                word[w] = '\0';
                if (strstr(str, word) == p && strstr(p + 1, word) == NULL &&
                    strstr(err, word) != NULL)
                    abort();
            }
        }
    } else {
        if (mode & 1) {
            fw__conninfo_env_t env = {fenv_get, &fe, (mode & 2) ? "fuzz" : NULL,
                                      (mode & 4) ? "/nonexistent-home" : NULL};
            if (fw__conninfo_apply_env(ci, &env, err, sizeof(err)) == 0)
                rc = fw__conninfo_finish(ci, err, sizeof(err));
            check_message(err, sizeof(err));
        } else {
            rc = fw__conninfo_finish(ci, err, sizeof(err));
            check_message(err, sizeof(err));
        }
        if (mode & 8) {
            /* overwrite the first keyword with the env text, and finish again */
            const char *kw = fw__conninfo_keyword(mode >> 4);
            if (kw != NULL &&
                fw__conninfo_set(ci, kw, envbuf != NULL ? envbuf : "", err, sizeof(err)) == 0)
                (void)fw__conninfo_finish(ci, err, sizeof(err));
            check_message(err, sizeof(err));
        }
        (void)rc;
        for (size_t i = 0; ci->finished && i < ci->nhosts; i++)
            if (ci->hosts[i].host == NULL || ci->hosts[i].port == NULL)
                abort();
        fw__conninfo_free(ci);
    }
    free(envbuf);
    free(str);
    return 0;
}
