#!/bin/sh
# The namespace and the custom search attributes the actions set (README "Finding runs").
# Idempotent: what exists is left alone.
set -eu
ns=${DEFAULT_NAMESPACE:-default}
addr=${TEMPORAL_ADDRESS:-temporal:7233}
until temporal operator cluster health --address "$addr"; do sleep 2; done
temporal operator namespace describe -n "$ns" --address "$addr" >/dev/null 2>&1 \
  || temporal operator namespace create -n "$ns" --retention 30d --address "$addr"
for attribute in KleerPortalId=Int KleerAction=Keyword HubSpotObjectId=Keyword \
                 KleerResult=Keyword HubSpotCallbackId=Keyword; do
  temporal operator search-attribute create --namespace "$ns" --address "$addr" \
    --name "${attribute%%=*}" --type "${attribute#*=}" || echo "${attribute%%=*} exists"
done
echo "namespace $ns ready"
