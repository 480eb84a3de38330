#!/usr/bin/env bash
# Printed by `make run` before connlog starts: how to send logs and query them.
cat <<'BANNER'
------------------------------------------------------------------------------
connlog is starting with embedded engines (chDB for ClickHouse, an in-memory
Kafka-protocol listener on 127.0.0.1:9092, SASL required). In another terminal:

  # 1. publish a few nginx lines, as the shipper identity connlog keeps in
  #    connlog-data/kafka-shipper.properties (kcat -F that-file works too)
  scripts/sample-lines.sh 5 | ./bin/connlog publish -brokers 127.0.0.1:9092 -topic nginx

  # 2. query them back (the admin token is created on first start, in connlog-data/admin.token)
  curl -s -H "Authorization: Bearer $(cat connlog-data/admin.token)" \
       -H "X-Purpose: walkthrough" \
       "http://127.0.0.1:8080/v1/access?ip=203.0.113.0/24&from=$(date -u -d '-1 hour' +%FT%TZ)&to=$(date -u -d '+1 hour' +%FT%TZ)"

  # 3. the web console: open http://127.0.0.1:8080/ui/ in a browser and sign
  #    in with the admin token (cat connlog-data/admin.token); state a purpose,
  #    then search 203.0.113.0/24
  # 4. metrics
  curl -s http://127.0.0.1:8080/metrics | grep ^connlog_

Stop with Ctrl-C (graceful: flush, commit, exit). README.md has the walk-through.
------------------------------------------------------------------------------
BANNER
