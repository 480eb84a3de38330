#!/usr/bin/env bash
# Prints N nginx "combined" lines stamped now, from clients in
# 203.0.113.0/24 (TEST-NET-3), for the README walk-through.
n=${1:-5}
now=$(date -u +'%d/%b/%Y:%H:%M:%S +0000')
paths=(/ /login /search?q=ticket /api/v1/items /static/app.js)
methods=(GET POST GET PUT GET)
for ((i = 1; i <= n; i++)); do
  k=$(( (i - 1) % 5 ))
  printf '203.0.113.%d - - [%s] "%s %s HTTP/1.1" %d %d "-" "curl/7.88.1 (walkthrough %d)"\n' \
    "$i" "$now" "${methods[$k]}" "${paths[$k]}" $(( k == 1 ? 401 : 200 )) $(( 100 * i )) "$i"
done
