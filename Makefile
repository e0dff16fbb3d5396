# pipit — make targets. `make test` is what CI runs (.ci/run).
GO ?= go
# Bounded fuzzing time per fuzz target in `make test`.
FUZZTIME ?= 10s

.PHONY: all build image demo demo-faulty test deps generate generate-check vet deadcode fmt-check unit openfeature fuzz bench

all: build

# The version and commit a release build records (internal/buildinfo);
# left empty, the binary reports what the Go toolchain read from git.
VERSION ?=
COMMIT ?=
BUILD_LDFLAGS = $(if $(VERSION),-X github.com/pipit-dev/pipit/internal/buildinfo.version=$(VERSION)) \
	$(if $(COMMIT),-X github.com/pipit-dev/pipit/internal/buildinfo.commit=$(COMMIT))

# A static binary (CGO off: the SQLite driver is pure Go), the one the
# container image holds.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(BUILD_LDFLAGS)" -o bin/pipit ./cmd/pipit

# The controller's image, tagged as the install manifests and the Helm
# chart name it (one place: deploy/kubernetes/kustomization.yaml). Only
# where a container engine answers: CI has none, and says it skipped.
IMAGE_REPO ?= ghcr.io/pipit-dev/pipit
IMAGE_TAG ?= $(shell awk '$$1 == "newTag:" { print $$2 }' deploy/kubernetes/kustomization.yaml)
image:
	@if docker info >/dev/null 2>&1; then \
		docker build --build-arg VERSION=$(IMAGE_TAG) --build-arg COMMIT=$$(git rev-parse HEAD) \
			-t $(IMAGE_REPO):$(IMAGE_TAG) . ; \
	else \
		echo "image: skipped, no container engine (docker info failed)"; \
	fi

demo:
	$(GO) run ./cmd/pipit demo

demo-faulty:
	$(GO) run ./cmd/pipit demo --faulty

# The whole suite: formatting, vet, no unreachable code, every test under
# the race detector (including the end-to-end tests that build and kill the
# real binary), and a bounded run of each fuzz target.
test: deps fmt-check generate-check vet deadcode unit openfeature fuzz

# Deepcopy methods and the Rollout CRD are generated from api/v1alpha1.
generate:
	bash hack/generate.sh

generate-check:
	bash hack/generate.sh --check

# What the tests need that Go does not bring, each skipped when already
# there: deadcode (built from tools/go.mod's pin), a real Prometheus server,
# systemd's socket-activation and unit-checking tools and R (the reference
# the statistics are checked against; about 30 seconds to install) and
# Chromium (the dashboard's test drives it headless) from Debian's
# packages, and a real Kubernetes
# control plane (etcd from Debian; kube-apiserver, controller-manager,
# scheduler and kwok built from source once and cached outside the tree:
# about 15 minutes on two idle cores the first time), and Helm with a
# kustomize build (hack/helm-tools' pins) to check the chart against the
# kustomize install.
deps:
	GO=$(GO) bash hack/install-deadcode.sh >/dev/null
	GO=$(GO) bash hack/install-helm-tools.sh >/dev/null
	bash hack/install-debian.sh prometheus /usr/bin/prometheus
	bash hack/install-debian.sh systemd /usr/bin/systemd-socket-activate
	bash hack/install-debian.sh r-base-core /usr/bin/Rscript
	bash hack/install-debian.sh chromium /usr/bin/chromium
	bash hack/install-kube-tools.sh >/dev/null

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Functions no program of pipit's reaches, not even through tests, or only
# through tests: each is wired, deleted or allow-listed with a reason in
# hack/deadcode-allow.txt.
deadcode:
	GO=$(GO) bash hack/deadcode.sh

# Packages whose tests start a Kubernetes control plane (their TestMain
# stops it) run after the others, one package at a time: a control plane
# takes most of two cores for a while, and the timing tests of the proxy,
# the daemon, the process target and the demo should not share the
# machine with one.
KUBE_TEST_DIRS = $(shell grep -rlE --include='*_test.go' 'StopShared|kubefixture[.]Main' . | xargs -n1 dirname | sort -u)

unit:
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v -x -F $(foreach d,$(KUBE_TEST_DIRS),-e github.com/pipit-dev/pipit/$(patsubst ./%,%,$(d))))
	$(GO) test -race -count=1 -timeout 30m -p 1 $(KUBE_TEST_DIRS)

# The OpenFeature providers against the real binary: pipit's own Go
# provider (a module of its own, with the Go SDK) and the official OFREP
# provider for Node (hack/test-ofrep-node.sh installs Node and it).
openfeature:
	cd openfeature/go && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	GO=$(GO) bash hack/test-ofrep-node.sh

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash hack/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/engine ./internal/proxy
