# farm: build a multi-arch image on a farm of podman nodes.
# `make demo` runs the whole pipeline on a lab farm on this machine;
# `make test` runs every test (unit, then lab tests against real podman over SSH).

GO        ?= go
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
TAGS      := remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/farm-build/farm/lib/version.Version=$(VERSION) -X github.com/farm-build/farm/lib/version.Commit=$(COMMIT)
STAGES    := farm farm-nodes farm-plan farm-build farm-manifest farm-timeline
export CGO_ENABLED = 0
# Lab tests take their time; the longest (fault injection) ones need minutes,
# and the suite grew past 25 minutes (node kinds, lab-machine, SIGKILL
# tables, tmux, Chromium): 60m leaves room on a busy machine.
LABTIMEOUT ?= 60m
# A count, not a duration: with a duration go1.26's fuzz coordinator can fail
# at the deadline with "context deadline exceeded" and no crasher when the
# machine is busy (golang/go#75804; CI failed so on FuzzParse). 200000 inputs
# take about 20 s each on an idle 2-core machine.
FUZZTIME  ?= 200000x
STATICCHECK := v0.8.2
# Every shell script (apt-get install shellcheck): executables with a sh or
# bash shebang, checked as their shebang says, and the bash parts they source
# (*.sh, no shebang).
SHELLSCRIPTS = $(shell grep -lrsE '^\#!.*\b(ba)?sh\b' scripts bench --exclude='*.md')
SOURCEDSCRIPTS = $(filter-out $(SHELLSCRIPTS),$(wildcard scripts/*/*.sh bench/*.sh bench/*/*.sh))
# Every stage builds for these; `make cross` puts them in bin/GOOS-GOARCH/.
CROSS     := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64

.PHONY: all build cross conformance test unit-test lab-test fuzz lint demo lab-up lab-down bench man completion install uninstall clean

all: build

build:
	@mkdir -p bin
	$(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o bin/ $(addprefix ./cmd/,$(STAGES))

# Cross-compile every stage for every target, and type-check the tests there
# too (vet), so per-OS files cannot rot on the OSes the lab does not run.
cross:
	@for t in $(CROSS); do \
		os=$${t%/*}; arch=$${t#*/}; echo "cross $$os/$$arch"; mkdir -p bin/$$os-$$arch && \
		GOOS=$$os GOARCH=$$arch $(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o bin/$$os-$$arch/ $(addprefix ./cmd/,$(STAGES)) && \
		GOOS=$$os GOARCH=$$arch $(GO) vet -tags "$(TAGS)" ./cmd/... ./lib/... || exit 1; \
	done

# The whole suite: static checks, unit tests, bounded fuzzing, then the lab.
# The lab comes up first: it also installs the tools some unit tests run
# (jq for the example scheduler).
test: lint lab-up unit-test conformance fuzz lab-test

unit-test:
	$(GO) test -tags "$(TAGS)" -count=1 ./...

lint: cross
	@test -z "$$(gofmt -l cmd lib test)" || { echo "gofmt would change:"; gofmt -l cmd lib test; exit 1; }
	$(GO) vet -tags "$(TAGS) lab conformance" ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) -tags "$(TAGS) lab conformance" ./...
	$(GO) test -count=1 -run '^TestHouseRules$$' ./test/
	shellcheck -x $(SHELLSCRIPTS)
	shellcheck -x -s bash $(SOURCEDSCRIPTS)

# The OCI distribution-spec conformance suite (pinned in test/conformance, a
# module of its own) against the in-process transfer registry: pull and push.
conformance:
	@mkdir -p bin
	cd test/conformance && GOFLAGS=-mod=mod $(GO) test -c -o ../../bin/conformance.test github.com/opencontainers/distribution-spec/conformance
	FARM_CONFORMANCE_TEST=$(CURDIR)/bin/conformance.test $(GO) test -tags "$(TAGS) conformance" -count=1 -run '^TestOCIConformance$$' -v ./lib/transfer

fuzz:
	$(GO) test -tags "$(TAGS)" -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./lib/record
	$(GO) test -tags "$(TAGS)" -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./lib/platform

lab-up:
	scripts/farm-lab up

lab-down:
	scripts/farm-lab down

# Lab tests run the real binaries against real podman services over real SSH.
lab-test: build lab-up
	$(GO) test -tags "$(TAGS) lab" -count=1 -p 1 -timeout $(LABTIMEOUT) ./test/lab/...

demo: build lab-up
	scripts/demo

bench: build lab-up
	bench/run
	bench/b7/run

# Man pages and shell completions are generated from the binaries' own flag
# definitions (hidden --generate-man / --generate-completion SHELL), so they
# cannot drift from --help.
man: build
	@mkdir -p bin/man
	@for s in $(STAGES); do bin/$$s --generate-man > bin/man/$$s.1 || exit 1; done

completion: build
	@mkdir -p bin/completion
	@for s in $(STAGES); do \
		bin/$$s --generate-completion bash > bin/completion/$$s.bash && \
		bin/$$s --generate-completion zsh > bin/completion/_$$s && \
		bin/$$s --generate-completion fish > bin/completion/$$s.fish || exit 1; \
	done

# `make install DESTDIR=/tmp/stage PREFIX=/usr`; uninstall removes exactly these files.
install: build man completion
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(addprefix bin/,$(STAGES)) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(addprefix bin/man/,$(addsuffix .1,$(STAGES))) $(DESTDIR)$(MANDIR)/man1/
	@for s in $(STAGES); do echo install -m 0644 bin/completion/$$s.bash $(DESTDIR)$(BASHCOMPDIR)/$$s; \
		install -m 0644 bin/completion/$$s.bash $(DESTDIR)$(BASHCOMPDIR)/$$s || exit 1; done
	install -m 0644 $(addprefix bin/completion/_,$(STAGES)) $(DESTDIR)$(ZSHCOMPDIR)/
	install -m 0644 $(addprefix bin/completion/,$(addsuffix .fish,$(STAGES))) $(DESTDIR)$(FISHCOMPDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(STAGES))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(addsuffix .1,$(STAGES)))
	rm -f $(addprefix $(DESTDIR)$(BASHCOMPDIR)/,$(STAGES))
	rm -f $(addprefix $(DESTDIR)$(ZSHCOMPDIR)/_,$(STAGES))
	rm -f $(addprefix $(DESTDIR)$(FISHCOMPDIR)/,$(addsuffix .fish,$(STAGES)))

clean:
	rm -rf bin
