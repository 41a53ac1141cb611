#!/usr/bin/env python3
# tools/part-order.py: lists the calls from an install part (sql/install/NN-*.sql)
# to a function first defined in a later part (issue 16: "no part calls a
# later part"). Text analysis: comments and '...' string literals (messages,
# hints) are left out; dynamic SQL built with format() is not seen.
# Usage: tools/part-order.py   (from the repository root; exit 1 if any)
import glob
import os
import re
import sys

parts = sorted(glob.glob('sql/install/*.sql'))
defined = {}
for p in parts:
    for m in re.finditer(r'CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE|AGGREGATE) '
                         r'(segment(?:_internal)?\.\w+)\s*\(', open(p).read()):
        defined.setdefault(m.group(1), os.path.basename(p))
found = []
for p in parts:
    text = re.sub(r'--[^\n]*', '', open(p).read())
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    for name in sorted(set(re.findall(r'(segment(?:_internal)?\.\w+)\s*\(', text))):
        where = defined.get(name)
        if where and where > os.path.basename(p):
            found.append(f'{os.path.basename(p)} calls {name} of {where}')
print('\n'.join(found) if found else 'no part calls a later part')
sys.exit(1 if found else 0)
