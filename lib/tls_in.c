/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine's input BIO: OpenSSL reads the ciphertext straight out of the caller's receive
 * buffer instead of out of a memory BIO that a copy filled (issue 18: "check the memory-BIO path
 * does not copy twice"). With BIO_s_mem every byte from the server was copied three times on
 * the client: recv() into the channel's buffer, BIO_write into the memory BIO (which also grew
 * to 87 KB for 64 KB reads), and OpenSSL's read of each record into its record buffer. Now the
 * second copy is gone: fw__tls_in_view lends the buffer, and the record layer copies from it.
 *
 * The lent buffer must stay as it is while bytes of it are unread. The channel keeps that rule
 * by construction (it receives into the buffer again only after OpenSSL asked for more, which
 * it does once it has read everything), and calls fw__tls_in_keep before any receive into it
 * all the same: what is left is then copied into the engine's own buffer. fw__tls_in_append
 * copies too (the handshake's bytes, which may come from anywhere).
 */
#include "tls_int.h"

#include "fw_util.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>

/* Made on first use and kept for the life of the process: never freed, since a BIO may be in
 * use on a runtime thread while the process exits (a leak checker sees it as reachable). */
static BIO_METHOD *_Atomic g_method;
static pthread_mutex_t g_method_mu = PTHREAD_MUTEX_INITIALIZER;

static int in_read(BIO *b, char *out, size_t cap, size_t *got)
{
    fw__tls_in_t *in = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    if (in->len == 0) {
        /* Empty reads as "retry", never as end of file (like a memory BIO with
         * BIO_set_mem_eof_return(-1)): a missing byte means "feed more", and the end of the
         * socket is the transport's to report. */
        BIO_set_retry_read(b);
        return 0;
    }
    size_t n = cap < in->len ? cap : in->len;
    memcpy(out, in->p, n);
    in->p += n;
    in->len -= n;
    *got = n;
    return 1;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    fw__tls_in_t *in = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return in->len > (size_t)LONG_MAX ? LONG_MAX : (long)in->len;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0; /* BIO_CTRL_EOF (never at end: see in_read), kTLS queries, the rest */
    }
}

static int in_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* The method, made under the mutex the first time (and again after a failure: out of memory
 * once is not out of memory for good). NULL when it cannot be made. */
static BIO_METHOD *method(void)
{
    BIO_METHOD *m = atomic_load_explicit(&g_method, memory_order_acquire);
    if (m != NULL)
        return m;
    pthread_mutex_lock(&g_method_mu);
    m = atomic_load_explicit(&g_method, memory_order_relaxed);
    if (m == NULL) {
        int type = BIO_get_new_index();
        m = type == -1 ? NULL : BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "fwire ciphertext in");
        if (m != NULL && (BIO_meth_set_read_ex(m, in_read) != 1 ||
                          BIO_meth_set_ctrl(m, in_ctrl) != 1 ||
                          BIO_meth_set_create(m, in_create) != 1)) {
            BIO_meth_free(m);
            m = NULL;
        }
        if (m != NULL)
            atomic_store_explicit(&g_method, m, memory_order_release);
    }
    pthread_mutex_unlock(&g_method_mu);
    return m;
}

BIO *fw__tls_in_bio(fw__tls_in_t *in)
{
    memset(in, 0, sizeof(*in));
    BIO_METHOD *m = method();
    if (m == NULL)
        return NULL;
    BIO *b = BIO_new(m);
    if (b != NULL)
        BIO_set_data(b, in);
    return b;
}

/* Room for `len` more bytes in the engine's own buffer, the unread bytes moved (or copied, from
 * a lent buffer) to its start. false: out of memory (nothing changed). */
static bool own_room(fw__tls_in_t *in, size_t len)
{
    if (in->len > SIZE_MAX - len)
        return false;
    size_t need = in->len + len;
    if (need > in->cap) {
        size_t cap = fw__grow_cap(in->cap, 4096, need);
        uint8_t *own = malloc(cap);
        if (own == NULL)
            return false;
        if (in->len > 0)
            memcpy(own, in->p, in->len);
        free(in->own);
        in->own = own;
        in->cap = cap;
    } else if (in->len > 0 && in->p != in->own) {
        if (in->owned)
            memmove(in->own, in->p, in->len);
        else
            memcpy(in->own, in->p, in->len);
    }
    in->p = in->own;
    in->owned = true;
    return true;
}

bool fw__tls_in_view(fw__tls_in_t *in, const uint8_t *p, size_t len)
{
    if (in->len > 0) /* not read yet (the channel never leaves any): keep the order, by copy */
        return fw__tls_in_append(in, p, len);
    in->p = p;
    in->len = len;
    in->owned = false;
    return true;
}

bool fw__tls_in_append(fw__tls_in_t *in, const uint8_t *p, size_t len)
{
    if (len == 0)
        return true;
    if (!own_room(in, len))
        return false;
    memcpy(in->own + in->len, p, len);
    in->len += len;
    return true;
}

bool fw__tls_in_keep(fw__tls_in_t *in)
{
    if (in->len == 0 || in->owned)
        return true;
    return own_room(in, 0);
}

void fw__tls_in_free(fw__tls_in_t *in)
{
    free(in->own);
    memset(in, 0, sizeof(*in));
}
