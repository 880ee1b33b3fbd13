// The OCI distribution-spec conformance suite, pinned, in a module of its
// own so that farm's module does not take on its dependencies (ginkgo,
// reggie, resty). `make conformance` builds its test binary from here and
// runs it against farm's in-process transfer registry.
module github.com/farm-build/farm/test/conformance

go 1.26

require github.com/opencontainers/distribution-spec/conformance v0.0.0-20231101194043-f2182352d4cc
