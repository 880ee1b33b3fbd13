package node

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/farm-build/farm/lib/record"
)

// MinPodman is the oldest podman farm drives: the libpod API 4 that
// pkg/bindings v4 speaks.
const MinPodman = 4

// Kind is how a node runs builds: what farm-build needs to give a build a
// cgroup parent or not, and to stop it.
type Kind struct {
	Rootless      bool
	CgroupManager string
	CgroupVersion string
	// Stop is record.StopCgroup, StopRuntime or StopNone.
	Stop string
	// GraphRoot is the service's image storage directory; empty when not
	// known (a record from an older farm-nodes).
	GraphRoot string
}

// KindOf reads a node's kind from its info. shell says whether farm can
// run commands on the node (not over tcp://).
func KindOf(info *Info, shell bool) Kind {
	k := Kind{Rootless: info.Host.Security.Rootless, CgroupManager: info.Host.CgroupManager, CgroupVersion: info.Host.CgroupVersion,
		GraphRoot: info.Store.GraphRoot}
	switch {
	case !shell:
		k.Stop = record.StopNone
	case k.Rootless:
		k.Stop = record.StopRuntime
	default:
		k.Stop = record.StopCgroup
	}
	return k
}

// CgroupParentAllowed reports whether a build on a node of this kind may be
// given a cgroup parent: a rootless user cannot create cgroups (cgroupfs on
// v1: "mkdir /sys/fs/cgroup/cpuset/...: permission denied").
func (k Kind) CgroupParentAllowed() bool { return !k.Rootless }

// Apply writes the kind into a node record.
func (k Kind) Apply(n *record.Node) {
	n.Rootless, n.CgroupManager, n.CgroupVersion, n.Stop, n.GraphRoot = k.Rootless, k.CgroupManager, k.CgroupVersion, k.Stop, k.GraphRoot
}

// FromRecord is the kind a node record tells; ok is false when the record
// does not say (written by an older farm-nodes, or by hand).
func FromRecord(n record.Node) (k Kind, ok bool) {
	return Kind{Rootless: n.Rootless, CgroupManager: n.CgroupManager, CgroupVersion: n.CgroupVersion, Stop: n.Stop, GraphRoot: n.GraphRoot}, n.Stop != ""
}

// Check reports what makes a node unusable by farm, from its answer to GET
// /info: a podman older than MinPodman, an answer that is not a podman
// service's, a rootless user without a subordinate id range.
func (i *Info) Check() error {
	v := i.Version.Version
	if v == "" || i.Host.Arch == "" || i.Host.OS == "" {
		return fmt.Errorf("unexpected answer to GET /info (podman version %q, os %q, arch %q): is this a podman service? see podman --remote info", v, i.Host.OS, i.Host.Arch)
	}
	major, err := majorVersion(v)
	if err != nil {
		return fmt.Errorf("unexpected podman version %q in GET /info: %w", v, err)
	}
	if major < MinPodman {
		return tooOld(v)
	}
	if i.Host.Security.Rootless && idRange(i.Host.IDMappings.UIDMap) <= 1 {
		return errors.New("rootless podman without a subordinate uid range: the node's user has no line in /etc/subuid (and /etc/subgid), so images with more than one user cannot be built; add one (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER) and run podman system migrate there")
	}
	return nil
}

func tooOld(v string) error {
	return fmt.Errorf("podman %s is too old: farm needs podman %d.0 or later on every node", v, MinPodman)
}

func majorVersion(v string) (int, error) {
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	return strconv.Atoi(major)
}

// idRange is how many ids a mapping covers.
func idRange(m []IDMap) int {
	n := 0
	for _, e := range m {
		n += e.Size
	}
	return n
}

// serverTooOld is how pkg/bindings refuses a service older than API 4.0.0
// when it connects: `server API version is too old. Client "4.0.0" server "3.4.4"`.
var serverTooOld = regexp.MustCompile(`server API version is too old\. Client "[^"]*" server "([^"]*)"`)

// explainConnect turns pkg/bindings' refusal of an old service into the
// version check's words; other errors are returned as they are.
func explainConnect(err error) error {
	if m := serverTooOld.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%w (%v)", tooOld(m[1]), err)
	}
	return err
}
