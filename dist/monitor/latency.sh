#!/usr/bin/env bash
# $REQUESTS GETs of $URL from the host, one after another (so SSH adds nothing to the times), each
# printing `<http code> <seconds>`; a request that fails prints what curl could measure.
# $TIMEOUT is each request's time limit in seconds. Parameters are set in front by monitor.ts.
command -v curl >/dev/null || {
  echo 'curl is not installed on the host' >&2
  exit 127
}
i=0
while [ "$i" -lt "$REQUESTS" ]; do
  curl -s -o /dev/null --max-time "$TIMEOUT" -w '%{http_code} %{time_total}\n' "$URL" || true
  i=$((i + 1))
done
