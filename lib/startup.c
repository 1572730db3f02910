/* SPDX-License-Identifier: MIT */
/*
 * Startup and authentication, sans-I/O (see startup.h for the contract and the policy).
 * Every message text that fwire writes comes from a format string in this file; text the server
 * sent is escaped first and only ever passed as an argument (CVE-2020-25696 class).
 */
#include "alloc.h"
#include "servermsg.h"
#include "startup.h"

#include "saslprep.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- failure --------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static fw__su_result_t
fail(fw__startup_t *su, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(su->errmsg, sizeof(su->errmsg), fmt, ap);
    va_end(ap);
    su->err = err;
    su->state = FW__SU_S_FAILED;
    fw__scram_free(&su->scram); /* no secret outlives a failed attempt */
    return FW__SU_FAILED;
}

/* The require_auth wording of libpq: which methods the user asked for. */
static const char *required_methods(const fw__startup_t *su, char *buf, size_t cap)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {{FW__PQ_AUTH_CLEARTEXT, "password"},
                 {FW__PQ_AUTH_MD5, "md5"},
                 {FW__PQ_AUTH_GSS, "gss"},
                 {FW__PQ_AUTH_SSPI, "sspi"},
                 {FW__PQ_AUTH_SASL, "scram-sha-256"}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((su->o.allowed & FW__SU_ALLOW(names[i].code)) == 0)
            continue;
        int n = snprintf(buf + o, cap - o, "%s%s", o ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
    if (!su->o.auth_required) {
        int n = snprintf(buf + o, cap - o, "%snone", o ? "," : "");
        (void)n;
    }
    return buf;
}

static fw__su_result_t refuse_method(fw__startup_t *su, const char *what)
{
    char req[96];
    return fail(su, FW_EAUTH, "authentication method requirement \"%s\" failed: server %s",
                required_methods(su, req, sizeof(req)), what);
}

/* ---- answering authentication requests -------------------------------------------------- */

static const char *request_words(int32_t code)
{
    switch (code) {
    case FW__PQ_AUTH_CLEARTEXT:
        return "requested a cleartext password";
    case FW__PQ_AUTH_MD5:
        return "requested a hashed password";
    case FW__PQ_AUTH_GSS:
    case FW__PQ_AUTH_GSS_CONTINUE:
        return "requested GSSAPI authentication";
    case FW__PQ_AUTH_SSPI:
        return "requested SSPI authentication";
    case FW__PQ_AUTH_SASL:
        return "requested SASL authentication";
    case FW__PQ_AUTH_KERBEROS_V5:
        return "requested Kerberos V5 authentication";
    default:
        return "requested SCM credentials authentication";
    }
}

static fw__su_result_t answer_password(fw__startup_t *su, const fw__pq_msg_t *m)
{
    int32_t code = m->u.auth.code;
    if (su->o.password == NULL || su->o.password[0] == '\0')
        return fail(su, FW_EAUTH, "password authentication failed: no password supplied");
    int rc;
    if (code == FW__PQ_AUTH_CLEARTEXT) {
        rc = fw__pq_put_password(su->out, su->o.password);
        su->method = FW__AUTH_PASSWORD;
    } else {
        char hash[FW__MD5_PASSWORD_LEN + 1];
        rc = fw__md5_password(hash, su->o.user, su->o.password, m->u.auth.data.ptr);
        if (rc == 0)
            rc = fw__pq_put_password(su->out, hash);
        fw__wipe(hash, sizeof(hash));
        su->method = FW__AUTH_MD5;
    }
    if (rc < 0)
        return fail(su, rc, "could not build the password message: %s", fw_strerror(rc));
    su->password_sent = true;
    su->state = FW__SU_S_PASSWORD;
    return FW__SU_CONTINUE;
}

static fw__su_result_t start_sasl(fw__startup_t *su, const fw__pq_msg_t *m)
{
    fw__pq_iter_t it;
    fw_slice_t mech;
    bool scram = false, plus = false;
    int rc;

    fw__pq_sasl_iter_init(&it, m);
    while ((rc = fw__pq_strlist_next(&it, &mech)) == 1) {
        if (mech.len == strlen(FW__SCRAM_MECH) && memcmp(mech.ptr, FW__SCRAM_MECH, mech.len) == 0)
            scram = true;
        else if (mech.len == strlen(FW__SCRAM_MECH_PLUS) &&
                 memcmp(mech.ptr, FW__SCRAM_MECH_PLUS, mech.len) == 0)
            plus = true;
    }
    if (rc < 0)
        return fail(su, rc, "malformed SASL mechanism list: %s", fw_strerror(rc));
    /* A PLUS offer without TLS means something between us stripped TLS (libpq's check). */
    if (plus && !su->o.tls)
        return fail(su, FW_EAUTH,
                    "server offered SCRAM-SHA-256-PLUS authentication over a "
                    "non-SSL connection");

    fw__scram_opts_t so;
    fw__scram_opts_init(&so);
    so.max_iterations = su->o.scram_max_iterations;
    bool can_bind = su->o.tls && su->o.cb_data != NULL && su->o.cb_data_len > 0;
    if (su->o.channel_binding == FW__CB_REQUIRE) {
        if (!su->o.tls)
            return fail(su, FW_EAUTH, "channel binding required, but SSL not in use");
        if (!plus)
            return fail(su, FW_EAUTH,
                        "channel binding is required, but server did not offer an "
                        "authentication method that supports channel binding");
        if (!can_bind)
            return fail(su, FW_EAUTH, "channel binding required, but %s",
                        su->o.cb_why ? su->o.cb_why : "no channel binding data is available");
    }
    if (plus && can_bind && su->o.channel_binding != FW__CB_DISABLE) {
        so.channel_binding = FW__SCRAM_CB_SERVER_END_POINT;
        so.cb_data = su->o.cb_data;
        so.cb_data_len = su->o.cb_data_len;
    } else if (!scram) {
        return fail(su, FW_EAUTH,
                    "none of the server's SASL authentication mechanisms are "
                    "supported");
    } else if (su->o.tls && can_bind && su->o.channel_binding != FW__CB_DISABLE) {
        /* We could bind but the server offered no PLUS: say so with 'y', so a server that does
         * support binding can detect the downgrade. Without binding data (an Ed25519
         * certificate) we send 'n': 'y' would claim a capability we lack. */
        so.channel_binding = FW__SCRAM_CB_NOT_OFFERED;
    }
    if (su->o.password == NULL || su->o.password[0] == '\0')
        return fail(su, FW_EAUTH, "password authentication failed: no password supplied");

    /* SASLprep, with PostgreSQL's fallback to the raw bytes (the server prepared its verifier
     * the same way). */
    static const size_t cap = FW__SASLPREP_OUT_MAX;
    uint8_t prepared[FW__SASLPREP_OUT_MAX];
    size_t plen = 0;
    size_t rawlen = strlen(su->o.password);
    rc = fw__saslprep((const uint8_t *)su->o.password, rawlen, prepared, cap, &plen);
    if (rc < 0) {
        fw__wipe(prepared, sizeof(prepared));
        return fail(su, FW_EAUTH, "password is longer than %d bytes", FW__SASLPREP_MAX_INPUT);
    }
    if (rc == FW__SASLPREP_OK) {
        so.password = prepared;
        so.password_len = plen;
    } else {
        so.password = (const uint8_t *)su->o.password;
        so.password_len = rawlen;
    }
    rc = fw__scram_init(&su->scram, &so);
    fw__wipe(prepared, sizeof(prepared));
    if (rc < 0) {
        char why[256];
        fw__scram_describe(&su->scram, why, sizeof(why));
        return fail(su, rc, "SCRAM: %s", why);
    }
    su->scram_used = true;
    fw_slice_t first;
    rc = fw__scram_client_first(&su->scram, &first);
    if (rc == 0)
        rc =
            fw__pq_put_sasl_initial(su->out, fw__scram_mechanism(&su->scram), first.ptr, first.len);
    if (rc < 0)
        return fail(su, rc, "could not build the SASL message: %s", fw_strerror(rc));
    su->method =
        so.channel_binding == FW__SCRAM_CB_SERVER_END_POINT ? FW__AUTH_SCRAM_PLUS : FW__AUTH_SCRAM;
    su->state = FW__SU_S_SASL_FIRST;
    return FW__SU_CONTINUE;
}

static fw__su_result_t scram_failed(fw__startup_t *su, int rc)
{
    char why[400];
    fw__scram_describe(&su->scram, why, sizeof(why));
    (void)rc;
    return fail(su, FW_EAUTH, "SCRAM authentication failed: %s", why);
}

static fw__su_result_t auth_ok(fw__startup_t *su)
{
    char req[96];
    switch (su->state) {
    case FW__SU_S_AUTH:
        /* The server asked for nothing: trust, peer or a client certificate. */
        if (su->o.restrict_auth && su->o.auth_required)
            return fail(su, FW_EAUTH,
                        "authentication method requirement \"%s\" failed: server did not "
                        "complete authentication",
                        required_methods(su, req, sizeof(req)));
        su->method = FW__AUTH_NONE;
        break;
    case FW__SU_S_PASSWORD:
    case FW__SU_S_SASL_DONE:
        break;
    case FW__SU_S_SASL_FIRST:
    case FW__SU_S_SASL_DERIVE:
    case FW__SU_S_SASL_FINAL:
        /* libpq accepts this unless require_auth is set; fwire never does: a server that skips
         * SASLFinal has not proved it knows the password (RELIABILITY.md, SCRAM checks). */
        return fail(su, FW_EAUTH,
                    "server sent AuthenticationOk before completing SCRAM "
                    "authentication (no verified server signature)");
    case FW__SU_S_INIT:
    case FW__SU_S_AUTH_OK:
    case FW__SU_S_READY:
    case FW__SU_S_FAILED:
        return fail(su, FW_EPROTO_UNEXPECTED, "unexpected AuthenticationOk");
    }
    if (su->scram_used && !fw__scram_verified(&su->scram))
        return fail(su, FW_EAUTH,
                    "server sent AuthenticationOk without a verified SCRAM "
                    "server signature");
    if (su->o.channel_binding == FW__CB_REQUIRE && su->method != FW__AUTH_SCRAM_PLUS)
        return fail(su, FW_EAUTH,
                    "channel binding required, but server authenticated client "
                    "without channel binding");
    fw__scram_free(&su->scram);
    su->state = FW__SU_S_AUTH_OK;
    return FW__SU_CONTINUE;
}

static fw__su_result_t on_auth(fw__startup_t *su, const fw__pq_msg_t *m)
{
    int32_t code = m->u.auth.code;
    int rc;

    switch (code) {
    case FW__PQ_AUTH_OK:
        return auth_ok(su);
    case FW__PQ_AUTH_SASL_CONTINUE:
        if (su->state != FW__SU_S_SASL_FIRST)
            return fail(su, FW_EPROTO_UNEXPECTED, "unexpected SASLContinue message");
        rc = fw__scram_server_first(&su->scram, m->u.auth.data.ptr, m->u.auth.data.len);
        if (rc < 0)
            return scram_failed(su, rc);
        su->state = FW__SU_S_SASL_DERIVE;
        return FW__SU_CONTINUE;
    case FW__PQ_AUTH_SASL_FINAL:
        if (su->state != FW__SU_S_SASL_FINAL)
            return fail(su, FW_EAUTH,
                        "unexpected SASLFinal message before the SCRAM exchange "
                        "finished");
        rc = fw__scram_server_final(&su->scram, m->u.auth.data.ptr, m->u.auth.data.len);
        if (rc < 0)
            return scram_failed(su, rc);
        su->state = FW__SU_S_SASL_DONE;
        return FW__SU_CONTINUE;
    default:
        break;
    }

    /* A first request: nothing may have been answered yet. */
    if (su->state != FW__SU_S_AUTH)
        return fail(su, FW_EPROTO_UNEXPECTED, "unexpected authentication request %d", (int)code);
    /* channel_binding=require refuses every non-SASL method before anything is sent
     * (CVE-2025-49146). */
    if (su->o.channel_binding == FW__CB_REQUIRE && code != FW__PQ_AUTH_SASL)
        return fail(su, FW_EAUTH,
                    "channel binding required but not supported by server's "
                    "authentication request");
    if (su->o.restrict_auth && (su->o.allowed & FW__SU_ALLOW(code)) == 0)
        return refuse_method(su, request_words(code));
    switch (code) {
    case FW__PQ_AUTH_CLEARTEXT:
    case FW__PQ_AUTH_MD5:
        return answer_password(su, m);
    case FW__PQ_AUTH_SASL:
        return start_sasl(su, m);
    default:
        return fail(su, FW_EAUTH, "server %s, which fwire does not support", request_words(code));
    }
}

/* ---- protocol version ------------------------------------------------------------------ */

#define VERSION_ARGS(v) FW__PQ_VERSION_MAJOR(v), FW__PQ_VERSION_MINOR(v)

/*
 * NegotiateProtocolVersion: the server cannot give us the version we asked for, or does not know
 * some `_pq_.` options. The rules are libpq 18's (pqGetNegotiateProtocolVersion3), plus one:
 * the server sends it while reading our StartupMessage, before anything else, so fwire takes it
 * only as the first message (libpq takes it any time before AuthenticationOk). Every other
 * shape is a server that does not follow the protocol, and nothing it says can be trusted.
 */
static fw__su_result_t on_negotiate(fw__startup_t *su, const fw__pq_msg_t *m)
{
    static const char bad[] = "received invalid protocol negotiation message";
    uint32_t v = m->u.negotiate.version;
    if (su->negotiated)
        return fail(su, FW_EPROTO_UNEXPECTED, "%s: server sent it twice", bad);
    if (su->nmsgs != 1 || su->state != FW__SU_S_AUTH)
        return fail(su, FW_EPROTO_UNEXPECTED,
                    "%s: it arrived after the server had begun authentication (it may only "
                    "answer the StartupMessage)",
                    bad);
    if (v > su->protocol)
        return fail(su, FW_EPROTO_BAD_VALUE,
                    "%s: server requested downgrade to a higher-numbered version (%u.%u; fwire "
                    "asked for %u.%u)",
                    bad, VERSION_ARGS(v), VERSION_ARGS(su->protocol));
    if (v < FW__PQ_PROTOCOL_3_0)
        return fail(su, FW_EPROTO_BAD_VALUE,
                    "%s: server requested downgrade to pre-3.0 protocol version (%u.%u)", bad,
                    VERSION_ARGS(v));
    if (v == FW__PQ_VERSION(3, 1))
        return fail(su, FW_EPROTO_BAD_VALUE,
                    "%s: server requested downgrade to non-existent 3.1 protocol version", bad);
    if (m->u.negotiate.nopts > 0) {
        /* fwire sends no protocol options: the server cannot have failed to know one. */
        fw__pq_iter_t it;
        fw_slice_t name;
        char esc[128];
        fw__pq_negotiate_iter_init(&it, m);
        if (fw__pq_strlist_next(&it, &name) != 1) /* the parse walked the list: cannot fail */
            return fail(su, FW_EPROTO_BAD_VALUE, "%s: malformed option list", bad);
        fw__escape_text(esc, sizeof(esc), name.ptr, name.len);
        if (name.len < 5 || memcmp(name.ptr, "_pq_.", 5) != 0)
            return fail(su, FW_EPROTO_BAD_VALUE,
                        "%s: server reported unsupported parameter name without a \"_pq_.\" "
                        "prefix (\"%s\")",
                        bad, esc);
        return fail(su, FW_EPROTO_BAD_VALUE,
                    "%s: server reported an unsupported parameter that was not requested "
                    "(\"%s\")",
                    bad, esc);
    }
    if (v == su->protocol)
        return fail(su, FW_EPROTO_BAD_VALUE, "%s: server negotiated but asks for no changes", bad);
    if (v < su->o.min_protocol)
        return fail(su, FW_EPROTOCOL_VERSION,
                    "server only supports protocol version %u.%u, but min_protocol_version was "
                    "set to %u.%u",
                    VERSION_ARGS(v), VERSION_ARGS(su->o.min_protocol));
    su->protocol = v;
    su->negotiated = true;
    return FW__SU_CONTINUE;
}

/* BackendKeyData: the key's length must be the one of the version in force (libpq 18). */
static fw__su_result_t on_key(fw__startup_t *su, const fw__pq_msg_t *m)
{
    if (su->state != FW__SU_S_AUTH_OK || su->key.len != 0)
        return fail(su, FW_EPROTO_UNEXPECTED, "unexpected BackendKeyData");
    size_t n = m->u.key.secret.len; /* 4..256: the parse checked */
    if (su->protocol == FW__PQ_PROTOCOL_3_0 && n != 4)
        return fail(su, FW_EPROTO_BAD_VALUE,
                    "received invalid BackendKeyData message: cancel key with length %zu not "
                    "allowed in protocol version 3.0 (must be 4 bytes)",
                    n);
    su->key.pid = m->u.key.pid;
    memcpy(su->key.secret, m->u.key.secret.ptr, n);
    su->key.len = (uint16_t)n;
    return FW__SU_CONTINUE;
}

/* ---- the message loop ------------------------------------------------------------------ */

static fw__su_result_t on_error(fw__startup_t *su, const fw__pq_msg_t *m)
{
    fw_error_t *e = &su->server_error;
    if (fw__servermsg_error(m, FW_PHASE_AUTH, e) < 0)
        return fail(su, FW_EPROTO_BAD_VALUE, "malformed ErrorResponse");
    su->have_server_error = true;
    /* Class 28 is "invalid authorization specification": 28P01 wrong password, 28000 no
     * pg_hba.conf entry. */
    int code = strncmp(e->sqlstate, "28", 2) == 0 ? FW_EAUTH : FW_ESERVER;
    return fail(su, code, "%s:  %s", e->severity[0] ? e->severity : "ERROR", e->message);
}

static fw__su_result_t on_message(fw__startup_t *su, const fw__pq_msg_t *m)
{
    switch (m->type) {
    case 'R':
        return on_auth(su, m);
    case 'E':
        return on_error(su, m);
    case 'N':
        if (su->o.notice_fn != NULL)
            su->o.notice_fn(su->o.notice_ud, m);
        return FW__SU_CONTINUE;
    case 'A':
        return FW__SU_CONTINUE; /* nobody can be listening yet */
    case 'S':
        if (fw__params_set_msg(&su->params, m) < 0)
            return fail(su, FW_ETOOBIG,
                        "server sent more ParameterStatus than fwire keeps "
                        "(%d parameters, %d bytes)",
                        FW__PARAMS_MAX, FW__PARAMS_BYTES_MAX);
        return FW__SU_CONTINUE;
    case 'K':
        return on_key(su, m);
    case 'Z':
        if (su->state != FW__SU_S_AUTH_OK)
            return fail(su, FW_EPROTO_UNEXPECTED,
                        "unexpected ReadyForQuery during "
                        "authentication");
        {
            /* fwire asked for UTF8: anything else would hand over rows that are not UTF-8
             * JSON (a server or a pooler that overrides it, or ALTER ROLE ... SET). */
            const char *enc = fw__params_get(&su->params, "client_encoding");
            if (enc != NULL && !fw__is_utf8_name(enc))
                return fail(su, FW_EPROTO_BAD_VALUE,
                            "server reports client_encoding \"%s\"; fwire needs UTF8 (rows would "
                            "not be UTF-8 JSON)",
                            enc);
        }
        su->state = FW__SU_S_READY;
        return FW__SU_READY;
    case 'v':
        return on_negotiate(su, m);
    default:
        return fail(su, FW_EPROTO_UNEXPECTED, "unexpected message type 0x%02x during startup",
                    m->type);
    }
}

/* A message the reader could not frame or parse; the two of protocol 3.2 are named. */
static fw__su_result_t reader_failed(fw__startup_t *su, int rc)
{
    switch (su->reader.err_type) {
    case 'v':
        return fail(su, rc, "received invalid protocol negotiation message: %s", fw_strerror(rc));
    case 'K':
        return fail(su, rc, "received invalid BackendKeyData message: %s", fw_strerror(rc));
    default:
        return fail(su, rc, "protocol violation during startup: %s", fw_strerror(rc));
    }
}

/* Handles every complete message held by the reader. */
static fw__su_result_t run(fw__startup_t *su)
{
    fw__pq_msg_t m;
    int rc;
    /* Every message of the feed is handled before returning, because the bytes are borrowed.
     * While a key derivation is pending the server must wait for our answer, so anything but an
     * asynchronous message then fails in on_message's state checks. Messages after
     * ReadyForQuery (an asynchronous notice or FATAL) are still handled here; the connection
     * takes over the reader afterwards. */
    while ((rc = fw__pq_reader_next(&su->reader, &m)) == 1) {
        su->nmsgs++;
        if (su->o.msg_fn != NULL)
            su->o.msg_fn(su->o.msg_ud, &m);
        if (on_message(su, &m) == FW__SU_FAILED)
            return FW__SU_FAILED;
    }
    if (rc < 0)
        return reader_failed(su, rc);
    if (su->state == FW__SU_S_READY)
        return FW__SU_READY;
    if (su->state == FW__SU_S_SASL_DERIVE)
        return FW__SU_DERIVE;
    return FW__SU_CONTINUE;
}

/* ---- public ---------------------------------------------------------------------------- */

int fw__startup_init(fw__startup_t *su, const fw__startup_opts_t *o, fw__pq_buf_t *out)
{
    memset(su, 0, sizeof(*su));
    if (o == NULL || out == NULL || o->user == NULL || o->user[0] == '\0' || o->database == NULL)
        return FW_EINVAL;
    uint32_t lo = o->min_protocol != 0 ? o->min_protocol : FW__PQ_PROTOCOL_3_0;
    uint32_t hi = o->max_protocol != 0 ? o->max_protocol : FW__PQ_PROTOCOL_3_0;
    if ((lo != FW__PQ_PROTOCOL_3_0 && lo != FW__PQ_PROTOCOL_3_2) ||
        (hi != FW__PQ_PROTOCOL_3_0 && hi != FW__PQ_PROTOCOL_3_2) || lo > hi)
        return FW_EINVAL; /* conninfo refuses these before a connection gets here */
    su->o = *o;
    su->o.min_protocol = lo;
    su->o.max_protocol = hi;
    su->protocol = hi;
    su->out = out;
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    if (o->max_message != 0)
        lim.max_message = o->max_message;
    lim.startup = true;
    fw__pq_reader_init(&su->reader, &lim, &fw__alloc);
    su->state = FW__SU_S_INIT;
    return 0;
}

fw__su_result_t fw__startup_begin(fw__startup_t *su)
{
    if (su->state != FW__SU_S_INIT)
        return fail(su, FW_ESTATE, "startup already begun");
    const char *kv[16];
    size_t n = 0;
    kv[n++] = "user";
    kv[n++] = su->o.user;
    kv[n++] = "database";
    kv[n++] = su->o.database;
    /* fwire reads and writes UTF-8 only: JSON text is UTF-8 by definition (RFC 8259). */
    kv[n++] = "client_encoding";
    kv[n++] = "UTF8";
    if (su->o.application_name != NULL && su->o.application_name[0] != '\0') {
        kv[n++] = "application_name";
        kv[n++] = su->o.application_name;
    }
    if (su->o.options != NULL && su->o.options[0] != '\0') {
        kv[n++] = "options";
        kv[n++] = su->o.options;
    }
    kv[n] = NULL;
    int rc = fw__pq_put_startup_version(su->out, su->protocol, kv);
    if (rc < 0)
        return fail(su, rc == FW_ETOOBIG ? FW_ECONFIG : rc,
                    "could not build the startup message: %s", fw_strerror(rc));
    su->state = FW__SU_S_AUTH;
    return FW__SU_CONTINUE;
}

fw__su_result_t fw__startup_feed(fw__startup_t *su, const uint8_t *buf, size_t len)
{
    if (su->state == FW__SU_S_FAILED)
        return FW__SU_FAILED;
    if (su->state == FW__SU_S_INIT || su->state == FW__SU_S_SASL_DERIVE)
        return fail(su, FW_ESTATE, "bytes fed in the wrong state");
    int rc = fw__pq_reader_feed(&su->reader, buf, len);
    if (rc < 0)
        return fail(su, rc, "protocol violation during startup: %s", fw_strerror(rc));
    return run(su);
}

int fw__startup_derive_work_cancellable(fw__startup_t *su, const _Atomic bool *cancel)
{
    return fw__scram_derive_cancellable(&su->scram, cancel);
}

int fw__startup_derive_work(fw__startup_t *su)
{
    return fw__startup_derive_work_cancellable(su, NULL);
}

fw__su_result_t fw__startup_derived(fw__startup_t *su, int rc)
{
    if (su->state != FW__SU_S_SASL_DERIVE)
        return fail(su, FW_ESTATE, "key derivation finished in the wrong state");
    if (rc < 0)
        return scram_failed(su, rc);
    fw_slice_t final;
    rc = fw__scram_client_final(&su->scram, &final);
    if (rc == 0)
        rc = fw__pq_put_sasl_response(su->out, final.ptr, final.len);
    if (rc < 0)
        return fail(su, rc, "could not build the SASL response: %s", fw_strerror(rc));
    su->password_sent = true; /* the proof: a secret-derived answer has left */
    su->state = FW__SU_S_SASL_FINAL;
    return FW__SU_CONTINUE;
}

const char *fw__startup_error(const fw__startup_t *su)
{
    return su->errmsg;
}

void fw__startup_free(fw__startup_t *su)
{
    fw__scram_free(&su->scram);
    fw__wipe(&su->key, sizeof(su->key));
    fw__pq_reader_free(&su->reader);
}
