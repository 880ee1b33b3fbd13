package main

const description = `farm-build reads job records (from farm-plan) on stdin and builds each job's
platform on its node, all in parallel, starting when the plan's end record
arrives: nothing is built from a plan cut short (its stage died) or one that
names a platform twice. The build context is walked once (honouring .containerignore
or .dockerignore), compressed in parallel, and the same bytes are sent to every
node. Each finished image comes back over the node's own connection into
local podman storage and tagged TAG-os-arch[-variant], so it survives
'podman image prune' until farm-manifest puts it in a list.

Every flag of 'podman --remote build' 4.9 is farm-build's too, with podman's
names, defaults (from containers.conf) and meaning, sent to each node as
podman-remote sends them; those a farm cannot honour are refused saying why.

Build output goes to stderr, each line prefixed [platform@node]. For each
platform one record goes to stdout: an image record, or an error record when
the platform failed. When a node fails (connection lost, service gone) the job
moves to the next node in its alternatives; a build that fails by itself (a bad
Containerfile, a failing RUN step) is not retried. Ctrl-C stops every remote
build (its processes are killed on the node), removes what this run pulled
back and exits 130.

Exit status: 0 when every platform was built, 1 when any failed or the input
was bad, 2 for a usage error, 130/143 when interrupted.

Environment:
   CONTAINER_HOST      the local store, where the images come back, as podman: this machine's
                       podman service, or a podman machine's (ssh://, over farm's own SSH:
                       strict known_hosts, an answer within 10 s); not used with --push
   CONTAINER_SSHKEY    SSH private key for nodes whose record names no identity, as podman
   SSH_AUTH_SOCK       the ssh-agent to ask for keys (farm never prompts for a passphrase)
   FARM_KNOWN_HOSTS    known_hosts files, colon-separated
                       (default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)
   REGISTRY_AUTH_FILE  --authfile, as podman
   FARM_LOG_LEVEL      --log-level
   FARM_LOG_FORMAT     --log-format

Examples:
   farm-nodes --farm lab | farm-plan | farm-build -t registry.example.com/app:1.0 .
   farm-nodes | farm-plan --platforms linux/amd64,linux/arm64 | farm-build -t localhost:5000/demo:latest -f Containerfile.prod --build-arg VERSION=1.2 ./src
   farm-nodes | farm-plan > plan.jsonl; farm-build -t IMG . < plan.jsonl      # save a plan, replay it
   farm-build -t IMG --network none --secret id=token,src=token.txt . < plan.jsonl
   farm-build -t IMG --cleanup --jobs 2 . < plan.jsonl | farm-manifest
   farm-build -t registry.example.com/app:1.0 --push . < plan.jsonl | farm-manifest   # nodes push; the list is made in the registry`
