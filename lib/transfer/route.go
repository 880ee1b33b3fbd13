package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ProbeRepo names the repositories of the reachability probe: a pull of
// ProbeRepo/<token>:probe that the registry answers itself, remembering
// the token, without touching its storage.
const ProbeRepo = "farm-probe"

// probeTimeout bounds the probe's pull: podman retries a refused
// connection a few times with growing delays before it gives up.
const probeTimeout = 20 * time.Second

// probeHandler answers the probe's requests (404, name unknown: podman
// does not retry that) and records their tokens; every other request goes
// to next.
type probeHandler struct {
	next http.Handler
	seen sync.Map // token -> true
}

func (p *probeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"+ProbeRepo+"/")
	if !ok {
		p.next.ServeHTTP(w, r)
		return
	}
	token, _, _ := strings.Cut(rest, "/")
	p.seen.Store(token, true)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"reachability probe","detail":%q}]}`, token)
}

// route is how the local podman service reaches the run's registry: the
// address it pulls from, and the forward that carries it, if any.
type route struct {
	addr string   // host:port as the local service sees it
	fwd  *Forward // nil: the registry itself
	how  string   // for the log
}

// localRoute finds, once per run, an address at which the local podman
// service reaches the registry, by trying: a forward on the local
// service's own SSH connection when it has one (a podman machine), then
// the registry's own 127.0.0.1 address (a service on this machine). Each is
// probed: the local service pulls a token from it, and the route works when
// that token reaches this run's registry (not whatever else listens on that
// port where the service runs). What is reachable decides, not the URI's
// scheme: a unix:// socket may lead into a VM. None works: unavailable.
func (p *Puller) localRoute(ctx context.Context, reg *RunRegistry) (*route, error) {
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
	if p.route != nil || p.routeErr != nil {
		return p.route, p.routeErr
	}
	var why []string
	if listen := p.opts.LocalListen; listen != nil {
		ln, err := listen("tcp", "127.0.0.1:0")
		if err != nil {
			why = append(why, fmt.Sprintf("its SSH server refuses port forwarding (AllowTcpForwarding in its sshd_config?): %v", err))
		} else {
			fwd := ServeForward(ln, reg.Addr())
			r := &route{addr: fmt.Sprintf("127.0.0.1:%d", fwd.Port()), fwd: fwd, how: "a forward on its SSH connection"}
			if err := p.probe(ctx, reg, r.addr); err == nil {
				p.route = r
				return r, nil
			} else {
				fwd.Close()
				if ctx.Err() != nil {
					return nil, context.Cause(ctx)
				}
				why = append(why, fmt.Sprintf("through a forward on its SSH connection: %v", err))
			}
		}
	}
	r := &route{addr: reg.Addr(), how: "the registry's address on this machine"}
	err := p.probe(ctx, reg, r.addr)
	if err == nil {
		p.route = r
		return r, nil
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	why = append(why, fmt.Sprintf("at %s: %v", r.addr, err))
	p.routeErr = unavailable("the local podman service (%s) cannot reach the transfer registry (%s)", p.opts.LocalName, strings.Join(why, "; "))
	return nil, p.routeErr
}

// probe has the local service pull a fresh token from addr; nil when the
// token reached reg.
func (p *Puller) probe(ctx context.Context, reg *RunRegistry, addr string) error {
	token := randomHex(8)
	ctx, cancel := context.WithTimeoutCause(ctx, probeTimeout, fmt.Errorf("no answer within %s", probeTimeout))
	defer cancel()
	start := time.Now()
	_, err := pull(ctx, p.local, addr+"/"+ProbeRepo+"/"+token+":probe", "", "", "")
	if reg.probes.seenToken(token) {
		p.opts.Log.Debug("transfer registry: the local podman service reaches it", "addr", addr, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		err = errors.New("the pull reached something else there")
	}
	return err
}

func (p *probeHandler) seenToken(token string) bool {
	_, ok := p.seen.Load(token)
	return ok
}
