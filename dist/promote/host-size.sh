#!/bin/sh
# The host's size for preflight (src/safety/preflight.ts, hostTotals): the number of CPUs, then
# /proc/meminfo.
nproc && cat /proc/meminfo
