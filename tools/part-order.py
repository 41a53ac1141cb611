#!/usr/bin/env python3
# tools/part-order.py: lists the calls from an install part (sql/install/NN-*.sql)
# to a function first defined in a later part (issue 16: "no part calls a
# later part"), then the functions a part creates again with CREATE OR
# REPLACE after a part (or itself) created them (each function is created
# once, with its final body: docs/architecture.md#sql-install-parts).
# Text analysis: comments and '...' string literals (messages, hints) are
# left out; dynamic SQL built with format() is not seen; a function is known
# by its name and argument list as written.
# Usage: tools/part-order.py   (from the repository root; exit 1 if any)
import glob
import os
import re
import sys

parts = sorted(glob.glob('sql/install/*.sql'))
defined = {}
created = {}    # (name, argument list) -> the part that created it first
again = []
for p in parts:
    text = open(p).read()
    for m in re.finditer(r'CREATE (OR REPLACE )?(?:FUNCTION|PROCEDURE|AGGREGATE) '
                         r'(segment(?:_internal)?\.\w+)\s*\(', text):
        name, part = m.group(2), os.path.basename(p)
        defined.setdefault(name, part)
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {'(': 1, ')': -1}.get(text[i], 0)
            i += 1
        key = (name, ' '.join(text[m.end():i - 1].split()))
        if m.group(1) and key in created:
            again.append(f'{part} creates {name} again (first in {created[key]})')
        created.setdefault(key, part)
found = []
for p in parts:
    text = re.sub(r'--[^\n]*', '', open(p).read())
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    for name in sorted(set(re.findall(r'(segment(?:_internal)?\.\w+)\s*\(', text))):
        where = defined.get(name)
        if where and where > os.path.basename(p):
            found.append(f'{os.path.basename(p)} calls {name} of {where}')
print('\n'.join(found) if found else 'no part calls a later part')
print('\n'.join(again) if again else 'no part creates a function again')
sys.exit(1 if found or again else 0)
