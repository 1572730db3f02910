#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate auth/saslprep_tables.h: the data SASLprep (RFC 4013) needs.

Usage:
    python3 auth/gen_saslprep_tables.py RFC3454_TXT UNICODEDATA_TXT \
        DERIVED_NORMALIZATION_PROPS_TXT COMPOSITION_EXCLUSIONS_TXT > auth/saslprep_tables.h

RFC3454_TXT is the text of RFC 3454 (or any excerpt that keeps its "----- Start Table X -----"
/ "----- End Table X -----" markers); the other three come from the Unicode Character Database
(Debian's unicode-data package installs them in /usr/share/unicode/).

The build never runs this script: its output is committed, so building needs neither the RFC nor
the UCD. Run it again only to move to another Unicode version, and review the diff.

What it emits, and why each table is only as big as it is:
  - the stringprep tables RFC 4013 uses (C.1.2, B.1, the union of everything it prohibits
    including A.1, D.1, D.2), as merged sorted ranges for binary search;
  - for NFKC: canonical combining classes, full compatibility decompositions and the primary
    composition pairs, restricted to code points that can reach normalisation. Like
    PostgreSQL's pg_saslprep, fw__saslprep refuses prohibited and unassigned (A.1) code points
    before it normalises, so only code points assigned in Unicode 3.2 and allowed by the profile
    are ever decomposed. The script checks that this set is closed under decomposition and
    composition, so no table lookup can miss.
  - two bounds the C code sizes its buffers with: the most code points and the most UTF-8 bytes
    normalisation can produce per input byte.
"""

import re
import sys

HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172
LINE_WIDTH = 100


def parse_rfc_tables(path):
    """Return {table name: set of code points} for every table in the RFC text."""
    tables, current = {}, None
    start = re.compile(r"^\s*----- Start Table (\S+) -----\s*$")
    end = re.compile(r"^\s*----- End Table (\S+) -----\s*$")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = start.match(line)
            if m:
                current = tables.setdefault(m.group(1), set())
                continue
            if end.match(line):
                current = None
                continue
            if current is None or not line.strip():
                continue
            field = line.strip().split(";")[0].strip()
            m = re.fullmatch(r"([0-9A-F]{4,6})(?:-([0-9A-F]{4,6}))?", field)
            if not m:
                continue  # page headers and footers inside a table in the full RFC text
            lo = int(m.group(1), 16)
            hi = int(m.group(2), 16) if m.group(2) else lo
            current.update(range(lo, hi + 1))
    return tables


def parse_unicode_data(path):
    """Return (ccc, decomposition) dicts; decomposition values are (is_compat, [code points])."""
    ccc, decomp = {}, {}
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split(";") for line in f if line.strip()]
    for row in rows:
        cp = int(row[0], 16)
        # Ranges ("<CJK Ideograph, First>" .. "Last>") have class 0 and no decomposition.
        if row[1].endswith(", Last>"):
            continue
        if int(row[3]):
            ccc[cp] = int(row[3])
        if row[5]:
            parts = row[5].split()
            compat = parts[0].startswith("<")
            if compat:
                parts = parts[1:]
            decomp[cp] = (compat, [int(p, 16) for p in parts])
    return ccc, decomp


def parse_property(path, name):
    """Code points listed with `name` in a UCD property file."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split(";")]
            # name None: a plain list of code points (CompositionExclusions.txt)
            if name is not None and (len(fields) < 2 or fields[1] != name):
                continue
            lo, _, hi = fields[0].partition("..")
            out.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return out


def unicode_version(path):
    with open(path, encoding="utf-8") as f:
        m = re.search(r"DerivedNormalizationProps-(\d+\.\d+\.\d+)\.txt", f.readline())
    return m.group(1) if m else "unknown"


def full_decomposition(cp, decomp):
    """NFKD of one code point (before canonical reordering), Hangul excluded."""
    if cp not in decomp:
        return [cp]
    out = []
    for part in decomp[cp][1]:
        out.extend(full_decomposition(part, decomp))
    return out


def utf8_len(cp):
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def ranges(cps):
    """Sorted, merged [lo, hi] ranges of a set of code points."""
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] + 1 == cp:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def emit_items(items, indent="    "):
    """Pack initialiser items into lines no wider than LINE_WIDTH."""
    lines, cur = [], indent
    for item in items:
        piece = item + ","
        if len(cur) + len(piece) + 1 > LINE_WIDTH and cur.strip():
            lines.append(cur.rstrip())
            cur = indent
        cur += piece + " "
    if cur.strip():
        lines.append(cur.rstrip())
    return "\n".join(lines)


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    rfc_path, ud_path, dnp_path, ce_path = argv[1:]
    rfc = parse_rfc_tables(rfc_path)
    need = ["A.1", "B.1", "C.1.2", "C.2.1", "C.2.2", "C.3", "C.4", "C.5", "C.6", "C.7", "C.8",
            "C.9", "D.1", "D.2"]
    for name in need:
        if not rfc.get(name):
            sys.exit("table %s not found in %s" % (name, rfc_path))

    ccc, decomp = parse_unicode_data(ud_path)
    full_excl = parse_property(dnp_path, "Full_Composition_Exclusion")
    version = unicode_version(dnp_path)

    # Cross-check the derived exclusions against their definition (UAX #15): the script
    # exclusions and post-composition-version list, singletons, and non-starter decompositions.
    listed = parse_property(ce_path, None)
    derived = set(listed)
    for cp, (compat, parts) in decomp.items():
        if compat:
            continue
        if len(parts) == 1 or ccc.get(cp, 0) != 0 or ccc.get(parts[0], 0) != 0:
            derived.add(cp)
    if derived != full_excl:
        sys.exit("Full_Composition_Exclusion disagrees with CompositionExclusions.txt")

    prohibited = set()
    for name in ["A.1", "C.1.2", "C.2.1", "C.2.2", "C.3", "C.4", "C.5", "C.6", "C.7", "C.8",
                 "C.9"]:
        prohibited |= rfc[name]
    mapped_away = rfc["B.1"] | rfc["C.1.2"]

    def allowed(cp):
        return cp not in prohibited and cp not in mapped_away

    def is_hangul(cp):
        return HANGUL_S_BASE <= cp < HANGUL_S_BASE + HANGUL_S_COUNT

    # Everything normalisation can see: allowed code points (U+0020 included, the image of the
    # C.1.2 mapping) and, checked below, everything they decompose or compose into.
    reach = [cp for cp in range(0x110000) if allowed(cp)]
    decomp_rows, max_cps_ratio, max_bytes_ratio, worst = {}, (1, 1), (1, 1), 0x20
    for cp in reach:
        if is_hangul(cp):
            seq = [0x1100 + (cp - HANGUL_S_BASE) // 588,
                   0x1161 + (cp - HANGUL_S_BASE) % 588 // 28]
            if (cp - HANGUL_S_BASE) % 28:
                seq.append(0x11A7 + (cp - HANGUL_S_BASE) % 28)
        else:
            seq = full_decomposition(cp, decomp)
            if seq != [cp]:
                decomp_rows[cp] = seq
        for part in seq:
            if not allowed(part):
                sys.exit("U+%04X decomposes to U+%04X, which is not allowed" % (cp, part))
        n, b, w = len(seq), sum(utf8_len(p) for p in seq), utf8_len(cp)
        if n * max_cps_ratio[1] > max_cps_ratio[0] * w:
            max_cps_ratio, worst = (n, w), cp
        if b * max_bytes_ratio[1] > max_bytes_ratio[0] * w:
            max_bytes_ratio = (b, w)

    comp_rows = []
    for cp, (compat, parts) in decomp.items():
        if compat or cp in full_excl or not allowed(cp):
            continue
        a, b = parts
        if not (allowed(a) and allowed(b)):
            sys.exit("composite U+%04X has a part that is not allowed" % cp)
        if ccc.get(cp, 0) != 0:
            sys.exit("composite U+%04X is not a starter" % cp)
        if utf8_len(cp) > utf8_len(a) + utf8_len(b):
            sys.exit("composite U+%04X is longer in UTF-8 than its parts" % cp)
        comp_rows.append((a, b, cp))
    # A composite outside the reachable set would mean a newer-than-3.2 composite of 3.2 parts;
    # Unicode's stability policy excludes those, and this confirms it for this data.
    for cp, (compat, parts) in decomp.items():
        if not compat and cp not in full_excl and not allowed(cp) and len(parts) == 2:
            if allowed(parts[0]) and allowed(parts[1]):
                sys.exit("U+%04X composes from allowed parts but is not allowed" % cp)
    comp_rows.sort()

    ccc_rows = []
    for cp in reach:
        c = ccc.get(cp, 0)
        if not c:
            continue
        if ccc_rows and ccc_rows[-1][1] + 1 == cp and ccc_rows[-1][2] == c:
            ccc_rows[-1][1] = cp
        else:
            ccc_rows.append([cp, cp, c])

    # Decomposition data: identical sequences are stored once.
    data, where, index = [], {}, []
    for cp in sorted(decomp_rows):
        seq = tuple(decomp_rows[cp])
        if seq not in where:
            where[seq] = len(data)
            data.extend(seq)
        index.append((cp, where[seq], len(seq)))
    if len(data) > 0xFFFF or max(len(s) for s in decomp_rows.values()) > 0xFF:
        sys.exit("decomposition data outgrew its index fields")

    cps_per_byte = -(-max_cps_ratio[0] // max_cps_ratio[1])
    bytes_per_byte = -(-max_bytes_ratio[0] // max_bytes_ratio[1])

    out = []
    w = out.append
    w("/* SPDX-License-Identifier: MIT */")
    w("/*")
    w(" * GENERATED by auth/gen_saslprep_tables.py; do not edit. Regenerate with:")
    w(" *   python3 auth/gen_saslprep_tables.py rfc3454.txt /usr/share/unicode/UnicodeData.txt \\")
    w(" *       /usr/share/unicode/DerivedNormalizationProps.txt \\")
    w(" *       /usr/share/unicode/CompositionExclusions.txt > auth/saslprep_tables.h")
    w(" * Inputs: RFC 3454 appendix tables A.1, B.1, C.1.2-C.9, D.1, D.2 (Unicode 3.2), and the")
    w(" * Unicode Character Database %s (Debian package unicode-data). Only code points that"
      % version)
    w(" * pass the RFC 4013 checks (assigned in Unicode 3.2, not prohibited, not mapped) carry")
    w(" * normalisation data: fw__saslprep rejects every other one before it normalises.")
    w(" * Included by auth/saslprep.c, and by its fuzz target to check outputs independently.")
    w(" */")
    w("#ifndef FW_SASLPREP_TABLES_H")
    w("#define FW_SASLPREP_TABLES_H")
    w("")
    w("#include <stdint.h>")
    w("")
    w("/* clang-format off */")
    w("")
    w('#define SP_UNICODE_VERSION "%s"' % version)
    w("/* Most code points NFKC produces per input byte (U+%04X is the worst case). */" % worst)
    w("#define SP_CPS_PER_BYTE %d" % cps_per_byte)
    w("/* Most UTF-8 bytes NFKC produces per input byte; composition never lengthens. */")
    w("#define SP_BYTES_PER_BYTE %d" % bytes_per_byte)
    w("")
    w("struct sp_range {")
    w("    uint32_t lo, hi;")
    w("};")
    w("struct sp_ccc_range {")
    w("    uint32_t lo, hi;")
    w("    uint8_t ccc;")
    w("};")
    w("struct sp_decomp {")
    w("    uint32_t cp;")
    w("    uint16_t start; /* index into sp_decomp_data */")
    w("    uint8_t len;")
    w("};")
    w("struct sp_comp {")
    w("    uint32_t first, second, composite;")
    w("};")

    def range_table(name, comment, cps):
        rs = ranges(cps)
        w("")
        w("/* %s: %d ranges. */" % (comment, len(rs)))
        w("static const struct sp_range %s[] = {" % name)
        w(emit_items("{0x%X, 0x%X}" % (lo, hi) for lo, hi in rs))
        w("};")

    range_table("sp_map_to_space", "RFC 3454 C.1.2, non-ASCII space: mapped to U+0020",
                rfc["C.1.2"])
    range_table("sp_map_to_nothing", "RFC 3454 B.1, commonly mapped to nothing", rfc["B.1"])
    range_table("sp_prohibited", "RFC 4013 2.3 prohibited (C.1.2, C.2.1-C.9) and A.1 unassigned",
                prohibited)
    range_table("sp_randalcat", "RFC 3454 D.1, bidi property R or AL", rfc["D.1"])
    range_table("sp_lcat", "RFC 3454 D.2, bidi property L", rfc["D.2"])

    w("")
    w("/* Canonical combining class, non-zero only: %d ranges. */" % len(ccc_rows))
    w("static const struct sp_ccc_range sp_ccc[] = {")
    w(emit_items("{0x%X, 0x%X, %d}" % tuple(r) for r in ccc_rows))
    w("};")
    w("")
    w("/* Full compatibility decomposition (NFKD, not yet reordered) of %d code points, Hangul"
      % len(index))
    w(" * syllables excluded (done algorithmically). */")
    w("static const struct sp_decomp sp_decomp[] = {")
    w(emit_items("{0x%X, %d, %d}" % r for r in index))
    w("};")
    w("")
    w("/* %d code points of decomposition data. */" % len(data))
    w("static const uint32_t sp_decomp_data[] = {")
    w(emit_items("0x%X" % cp for cp in data))
    w("};")
    w("")
    w("/* Primary composites: %d pairs sorted by (first, second), Hangul excluded. */"
      % len(comp_rows))
    w("static const struct sp_comp sp_comp[] = {")
    w(emit_items("{0x%X, 0x%X, 0x%X}" % r for r in comp_rows))
    w("};")
    w("")
    w("/* clang-format on */")
    w("")
    w("#endif /* FW_SASLPREP_TABLES_H */")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
