#!/bin/sh
# Writes to stdout one JavaScript module made of DIR/js/app.js and every module it imports,
# for the binary's embedded UI (scripts/embed-web.sh): the browser then fetches and compiles
# one file instead of one per module, one import level after another. The modules under web/
# stay as they are and are what a web_root serves while developing: there is no build step
# for the source, only this packing when the binary is built.
#
# Each module becomes a function run once, in the order the browser would evaluate them
# (dependencies first, depth-first in import order), returning its exports:
#
#   // js/dom.js
#   const __m1 = (() => {
#   <the module's text; its imports as constants, "export " taken off its declarations>
#   return { el, replace };
#   })();
#
# The modules keep to what this can pack, and anything else stops the build with the file and
# line: imports `import * as NAME from 'PATH';` and `import { a, b as c } from 'PATH';`
# (relative paths; one statement may span lines), exports only on declarations
# (`export function|async function|const|class NAME`: no export let/var/default/lists, since
# an import here is a copy, not a live binding), no import cycle, no dynamic import(), and
# import.meta only in modules directly under js/ (the bundle is js/bundle.js, so a URL made
# relative to import.meta.url resolves to the same file as from the module itself).
# Usage: bundle-web.sh DIR
set -eu
root=${1:?usage: bundle-web.sh DIR}
[ -f "$root/js/app.js" ] || { echo "bundle-web.sh: no $root/js/app.js" >&2; exit 1; }
exec awk -v root="$root" -v q="'" '
function die(msg) {
    printf "bundle-web.sh: %s\n", msg > "/dev/stderr"
    failed = 1
    exit 1
}
# the path (relative to root) that rel names from the module at base
function resolve(base, rel, where,    path, parts, n, i, k, out, seg) {
    if (rel !~ /^\.\.?\//) die(where ": import of \"" rel "\": only relative paths are packed")
    path = base
    sub(/[^\/]*$/, "", path)
    path = path rel
    n = split(path, parts, "/")
    k = 0
    for (i = 1; i <= n; i++) {
        seg = parts[i]
        if (seg == "." || seg == "") continue
        if (seg == "..") {
            if (k == 0) die(where ": import of \"" rel "\" leaves the web directory")
            k--
            continue
        }
        out[++k] = seg
    }
    path = out[1]
    for (i = 2; i <= k; i++) path = path "/" out[i]
    return path
}
# packs the module at path p (and, first, what it imports) into the output
function visit(p, from,    file, line, ln, stmt, start, body, head, names, m, rel, dep, what,
               name, rc, open_stmt, bind) {
    if (p in state) {
        if (state[p] == 1) die("import cycle: " from " imports " p " while " p " is being packed")
        return
    }
    state[p] = 1
    file = root "/" p
    body = ""
    head = ""
    names = ""
    open_stmt = 0
    ln = 0
    while ((rc = (getline line < file)) > 0) {
        ln++
        if (open_stmt) {
            stmt = stmt " " line
            if (line !~ /;[ \t]*$/) continue
            open_stmt = 0
        } else if (line ~ /^import[ \t{*]/) {
            stmt = line
            start = ln
            if (line !~ /;[ \t]*$/) {
                open_stmt = 1
                continue
            }
        } else {
            if (line ~ /(^|[^A-Za-z0-9_$.])import[ \t]*\(/)
                die(p ":" ln ": dynamic import() is not packed")
            if (line ~ /import\.meta/ && p ~ /^js\/[^\/]*\//)
                die(p ":" ln ": import.meta in a module below js/ would resolve from js/bundle.js")
            if (line ~ /^export[ \t]/) {
                if (match(line, /^export[ \t]+(async[ \t]+)?function\*?[ \t]+[A-Za-z_$][A-Za-z0-9_$]*/) ||
                    match(line, /^export[ \t]+(const|class)[ \t]+[A-Za-z_$][A-Za-z0-9_$]*/)) {
                    what = substr(line, 1, RLENGTH)
                    name = what
                    sub(/^.*[ \t*]/, "", name)
                    names = names (names == "" ? "" : ", ") name
                    sub(/^export[ \t]+/, "", line)
                } else {
                    die(p ":" ln ": only export function|async function|const|class NAME is packed")
                }
            } else if (line ~ /^await[ \t]/) {
                die(p ":" ln ": top-level await is not packed")
            }
            body = body line "\n"
            continue
        }
        # a whole import statement, from line start to ln
        gsub(/[ \t]+/, " ", stmt)
        if (stmt ~ re_ns) {
            m = stmt
            sub(/^import \* as /, "", m)
            name = m
            sub(/ .*$/, "", name)
            bind = name
        } else if (stmt ~ re_named) {
            m = stmt
            sub(/^import ?\{ ?/, "", m)
            what = m
            sub(/ ?\}.*$/, "", what)
            sub(/, ?$/, "", what)
            gsub(/ as /, ": ", what)
            if (what !~ /^[A-Za-z_$][A-Za-z0-9_$]*(: [A-Za-z_$][A-Za-z0-9_$]*)?(, ?[A-Za-z_$][A-Za-z0-9_$]*(: [A-Za-z_$][A-Za-z0-9_$]*)?)*$/)
                die(p ":" start ": cannot read the names of: " stmt)
            bind = "{ " what " }"
        } else {
            die(p ":" start ": not an import this packs: " stmt)
        }
        rel = m
        sub("^[^" q "]*" q, "", rel)
        sub(q ".*$", "", rel)
        dep = resolve(p, rel, p ":" start)
        visit(dep, p)
        head = head "const " bind " = " id[dep] ";\n"
    }
    if (rc < 0) die("cannot read " file " (imported by " from ")")
    if (open_stmt) die(p ":" start ": the import statement does not end")
    close(file)
    id[p] = "__m" count++
    state[p] = 2
    printf "// %s\nconst %s = (() => {\n%s%sreturn { %s };\n})();\n", p, id[p], head, body, names
}
BEGIN {
    re_ns = "^import \\* as [A-Za-z_$][A-Za-z0-9_$]* from " q "[^" q "]+" q " ?; ?$"
    re_named = "^import ?[{][^}]*[}] ?from " q "[^" q "]+" q " ?; ?$"
    count = 0
    print "// Generated by scripts/bundle-web.sh from web/js: every module, dependencies first."
    visit("js/app.js", "(the entry)")
    exit 0
}
END {
    if (failed) exit 1
}
' </dev/null
