#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Makes the one installed header: lib/fwire.h with its `#include "fwire_base.h"` line replaced by
# common/fwire_base.h itself, so users get one self-contained fwire.h (STYLE 30) while the pure
# leaves inside the tree include only the vocabulary (common/fwire_base.h).
#   single_header.py FWIRE_H FWIRE_BASE_H OUTPUT
import sys

api, base, out = sys.argv[1:4]
with open(base, encoding="utf-8") as f:
    base_text = f.read()
lines = []
done = False
with open(api, encoding="utf-8") as f:
    for line in f:
        if not done and line.startswith('#include "fwire_base.h"'):
            lines.append("/* ---- common/fwire_base.h, inlined at install ---- */\n")
            lines.append(base_text)
            lines.append("/* ---- end of common/fwire_base.h ---- */\n")
            done = True
        else:
            lines.append(line)
if not done:
    sys.exit("single_header.py: no #include \"fwire_base.h\" line in " + api)
with open(out, "w", encoding="utf-8") as f:
    f.writelines(lines)
