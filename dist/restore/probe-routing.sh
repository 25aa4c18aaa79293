#!/usr/bin/env bash
# Four requests to $URL (src/domain/rolling.ts): a proxy balancing over the old and the new
# container answers from either. Prints each response's headers, carriage returns removed, followed
# by an empty line.
for _ in 1 2 3 4; do
  curl -sS -o /dev/null -D - --max-time 5 "$URL" | tr -d '\r'
  echo
done
