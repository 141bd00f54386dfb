#!/bin/sh
# The weekly run: drift first, an early (forced) retrain of every property drift flags, then the
# regular retrain of all properties (thresholds apply; extra arguments are passed to it).
# Cron: 0 2 * * 0  cd /srv/bookloop && deploy/weekly-retrain.sh >> /var/log/bookloop/weekly.log 2>&1
# Exit status: 0 when every step succeeded, 1 otherwise.
set -u
BOOKLOOP=${BOOKLOOP:-.venv/bin/bookloop}
status=0

drift_json=$($BOOKLOOP drift --all-properties --json)
code=$?
if [ "$code" -ge 2 ]; then
    echo "weekly-retrain: drift check failed (exit $code); continuing with the regular retrain" >&2
    status=1
fi
flagged=$(printf '%s' "$drift_json" | python3 -c \
    'import json, sys; print(" ".join(json.load(sys.stdin).get("retrain_recommended", [])))' 2>/dev/null)
for property in $flagged; do
    echo "weekly-retrain: drift recommends retraining $property now"
    $BOOKLOOP retrain --property-id "$property" --force || status=1
done

$BOOKLOOP retrain --all-properties "$@" || status=1
exit $status
