package transfer

import (
	"context"
	"fmt"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/fault"
	"github.com/farm-build/farm/lib/platform"
)

// CacheRepoPrefix starts the repositories of the farm-wide layer cache
// (farm-build --layer-cache farm): one per platform, CacheRepoPrefix/<os-arch>,
// shared by every node and every run that uses this cache directory. Each
// build step's result is a tag there, named by buildah's cache key (podman
// build --cache-to); a build on any node looks its steps up by key
// (--cache-from) before running them.
const CacheRepoPrefix = "farm-cache"

// CacheForward opens the way from a node to the run's registry for one
// build's layer cache: a forward on the node's own connection, as for a
// pull-back, on a stable port of its own (the node's blob-info cache
// remembers which layers the registry has by host:port). It returns the
// cache repository as the node names it, 127.0.0.1:PORT/farm-cache/os-arch;
// close the forward when the build is over.
func (p *Puller) CacheForward(ctx context.Context, s *conn.Session, plat platform.Platform) (string, *Forward, error) {
	name := s.Target.Name
	listen, err := nodeListener(s)
	if err != nil {
		return "", nil, err
	}
	ln, err := ListenStable(listen, name+"/"+plat.String()+"/cache")
	if err != nil {
		if s.Remote() {
			return "", nil, unavailable("the SSH server of %s refuses port forwarding (AllowTcpForwarding in its sshd_config?): %v", name, err)
		}
		return "", nil, unavailable("no port on 127.0.0.1 for %s: %v", name, err)
	}
	reg, err := p.registry(ctx)
	if err != nil {
		ln.Close()
		return "", nil, fault.AsLocal(err)
	}
	fwd := ServeForward(ln, reg.Addr())
	return fmt.Sprintf("127.0.0.1:%d/%s/%s", fwd.Port(), CacheRepoPrefix, tagFor(plat)), fwd, nil
}
