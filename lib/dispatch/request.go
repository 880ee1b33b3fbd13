package dispatch

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/blang/semver/v4"
	"github.com/containers/buildah/define"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/types"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/docker/go-units"
)

// Spec is what to build, the same for every job of a run.
type Spec struct {
	// Options are podman build's options as podman's client makes them
	// from its command line (see lib/buildflags); they are sent as
	// podman-remote 4.9 sends them. The platforms and the cgroup parent
	// are set per job; the image is named after its build.
	Options entities.BuildOptions
	// Containerfiles are paths inside the context archive; empty means the
	// server's default (Containerfile, then Dockerfile).
	Containerfiles []string
	// Secrets are the --secret values as sent: each file secret's src
	// names the copy of the file carried in the context archive, as
	// podman-remote does it.
	Secrets []string
	// FarmCache shares layers between nodes (--layer-cache farm): every
	// build caches its steps in the transfer registry and looks there for
	// steps another node built (--cache-to and --cache-from).
	FarmCache bool
}

// Query returns the query parameters of POST /build for o, as
// pkg/bindings/images.Build (v4.9.5) makes them; a unit test compares the
// two for a table of command lines. Left out, as farm sets them itself:
// the context (Containerfiles, secrets) and the credentials header.
func Query(o *entities.BuildOptions) (url.Values, error) {
	c := o.CommonBuildOpts
	if c == nil {
		c = &define.CommonBuildOptions{}
	}
	p := url.Values{}
	if err := jsonParams(p, o, c); err != nil {
		return nil, err
	}
	numberParams(p, o, c)
	flagParams(p, o, c)
	stringParams(p, o, c)
	if o.Jobs != nil {
		p.Set("jobs", strconv.FormatUint(uint64(*o.Jobs), 10))
	}
	if int64(o.CacheTTL) != 0 {
		p.Set("cachettl", o.CacheTTL.String())
	}
	if o.Timestamp != nil {
		p.Set("timestamp", strconv.FormatInt(o.Timestamp.Unix(), 10))
	}
	if c.ShmSize != "" {
		shm, err := units.RAMInBytes(c.ShmSize)
		if err != nil {
			return nil, err
		}
		p.Set("shmsize", strconv.Itoa(int(shm)))
	}
	platformParams(p, o)
	return p, nil
}

// jsonParams are the parameters sent JSON-encoded, each only when set.
func jsonParams(p url.Values, o *entities.BuildOptions, c *define.CommonBuildOptions) error {
	var cacheFrom, cacheTo []string
	for _, r := range o.CacheFrom {
		cacheFrom = append(cacheFrom, r.String())
	}
	for _, r := range o.CacheTo {
		cacheTo = append(cacheTo, r.String())
	}
	for _, j := range []struct {
		name string
		v    any
		set  bool
	}{
		{"addcaps", o.AddCapabilities, len(o.AddCapabilities) > 0},
		{"annotations", o.Annotations, len(o.Annotations) > 0},
		{"cppflags", o.CPPFlags, len(o.CPPFlags) > 0},
		{"additionalbuildcontexts", o.AdditionalBuildContexts, len(o.AdditionalBuildContexts) > 0},
		{"idmappingoptions", o.IDMappingOptions, o.IDMappingOptions != nil},
		{"buildargs", o.Args, len(o.Args) > 0},
		{"excludes", o.Excludes, len(o.Excludes) > 0},
		{"devices", o.Devices, len(o.Devices) > 0},
		{"dnsservers", c.DNSServers, len(c.DNSServers) > 0},
		{"dnsoptions", c.DNSOptions, len(c.DNSOptions) > 0},
		{"dnssearch", c.DNSSearch, len(c.DNSSearch) > 0},
		{"dropcaps", o.DropCapabilities, len(o.DropCapabilities) > 0},
		{"labels", o.Labels, len(o.Labels) > 0},
		{"labelopts", c.LabelOpts, len(c.LabelOpts) > 0},
		{"cachefrom", cacheFrom, o.CacheFrom != nil},
		{"cacheto", cacheTo, o.CacheTo != nil},
		{"extrahosts", c.AddHost, len(c.AddHost) > 0},
		{"nsoptions", o.NamespaceOptions, len(o.NamespaceOptions) > 0},
		{"ulimits", c.Ulimit, len(c.Ulimit) > 0},
	} {
		if !j.set {
			continue
		}
		data, err := json.Marshal(j.v)
		if err != nil {
			return err
		}
		p.Set(j.name, string(data))
	}
	return nil
}

func numberParams(p url.Values, o *entities.BuildOptions, c *define.CommonBuildOptions) {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"cpuperiod", int64(c.CPUPeriod)}, {"cpuquota", c.CPUQuota}, {"cpushares", int64(c.CPUShares)},
		{"memswap", c.MemorySwap}, {"memory", c.Memory},
	} {
		if n.v > 0 {
			p.Set(n.name, strconv.Itoa(int(n.v)))
		}
	}
	// Always sent: left out, the service would pick its own defaults, and
	// without nsoptions it runs RUN steps in the host's network namespace.
	p.Set("networkmode", strconv.Itoa(int(o.ConfigureNetwork)))
	p.Set("isolation", strconv.Itoa(int(o.Isolation)))
}

func flagParams(p url.Values, o *entities.BuildOptions, c *define.CommonBuildOptions) {
	one := func(name string, on bool) {
		if on {
			p.Set(name, "1")
		}
	}
	oneOrZero := func(name string, on bool) {
		p.Set(name, "0")
		one(name, on)
	}
	optional := func(name string, b types.OptionalBool) {
		switch b {
		case types.OptionalBoolTrue:
			p.Set(name, "1")
		case types.OptionalBoolFalse:
			p.Set(name, "0")
		}
	}
	one("allplatforms", o.AllPlatforms)
	one("forcerm", o.ForceRmIntermediateCtrs)
	oneOrZero("rm", o.RemoveIntermediateCtrs)
	oneOrZero("omithistory", c.OmitHistory)
	one("ignore", o.IgnoreUnrecognizedInstructions)
	one("httpproxy", c.HTTPProxy)
	one("layers", o.Layers)
	one("rusage", o.LogRusage)
	optional("skipunusedstages", o.SkipUnusedStages)
	one("nocache", o.NoCache)
	optional("identitylabel", c.IdentityLabel)
	one("q", o.Quiet)
	one("squash", o.Squash)
	if o.SystemContext != nil && o.SystemContext.DockerInsecureSkipTLSVerify == types.OptionalBoolTrue {
		p.Set("tlsVerify", "false")
	}
}

func stringParams(p url.Values, o *entities.BuildOptions, c *define.CommonBuildOptions) {
	p.Add("t", o.Output)
	for _, tag := range o.AdditionalTags {
		p.Add("t", tag)
	}
	p.Set("outputformat", o.OutputFormat)
	p.Set("pullpolicy", o.PullPolicy.String())
	for _, s := range []struct{ name, v string }{
		{"cpusetcpus", c.CPUSetCPUs}, {"cpusetmems", c.CPUSetMems}, {"cgroupparent", c.CgroupParent},
		{"from", o.From}, {"seccomp", c.SeccompProfilePath}, {"apparmor", c.ApparmorProfile},
		{"rusagelogfile", o.RusageLogFile}, {"manifest", o.Manifest}, {"output", o.Output},
		{"osversion", o.OSVersion}, {"target", o.Target},
	} {
		if s.v != "" {
			p.Set(s.name, s.v)
		}
	}
	for _, list := range []struct {
		name string
		v    []string
	}{
		{"layerLabel", o.LayerLabels}, {"volume", c.Volumes}, {"groupadd", o.GroupAdd},
		{"setenv", o.Envs}, {"unsetenv", o.UnsetEnvs}, {"unsetlabel", o.UnsetLabels},
	} {
		for _, v := range list.v {
			p.Add(list.name, v)
		}
	}
	// As the bindings do: each feature replaces the one before.
	for _, f := range o.OSFeatures {
		p.Set("osfeature", f)
	}
}

// podman44 is the first podman whose build API takes a JSON list of
// --cache-from and --cache-to repositories (buildah 1.29); before, one
// repository as a plain string.
var podman44 = semver.MustParse("4.4.0")

// cacheParamsFor sends cachefrom and cacheto as a node of version v reads
// them: a podman older than 4.4 refuses a JSON list (400, "cacheFrom").
func cacheParamsFor(p url.Values, v *semver.Version) error {
	if v == nil || !v.LT(podman44) {
		return nil
	}
	for _, c := range []struct{ name, flag string }{{"cachefrom", "--cache-from"}, {"cacheto", "--cache-to"}} {
		if !p.Has(c.name) {
			continue
		}
		var repos []string
		if err := json.Unmarshal([]byte(p.Get(c.name)), &repos); err != nil {
			return err
		}
		switch len(repos) {
		case 0:
			p.Del(c.name)
		case 1:
			p.Set(c.name, repos[0])
		default:
			return fmt.Errorf("podman %s on the node takes one %s repository, not %d (several need podman 4.4)", v, c.flag, len(repos))
		}
	}
	return nil
}

// platformParams sends the platforms as images.Build does; farm gives every
// job one.
func platformParams(p url.Values, o *entities.BuildOptions) {
	for _, pl := range o.Platforms {
		if pl.OS == "" && pl.Arch == "" && pl.Variant == "" {
			continue
		}
		v := pl.OS + "/" + pl.Arch
		if pl.Variant != "" {
			v += "/" + pl.Variant
		}
		p.Add("platform", v)
	}
}

// params are the query parameters of one job's POST /build: the run's
// options with this job's platform and cgroup parent, and no name for the
// image (see Runner.build).
func (req request) params() (url.Values, error) {
	o := req.spec.Options
	o.Output = ""
	o.AdditionalTags = nil
	o.Platforms = []struct{ OS, Arch, Variant string }{{req.platform.OS, req.platform.Arch, req.platform.Variant}}
	common := define.CommonBuildOptions{}
	if o.CommonBuildOpts != nil {
		common = *o.CommonBuildOpts
	}
	common.CgroupParent = req.cgroup
	common.Secrets = nil
	if req.marker != "" {
		// The job's mark for stopping it (see marker): one more host entry.
		common.AddHost = append(append([]string{}, common.AddHost...), req.marker)
	}
	o.CommonBuildOpts = &common
	if req.cache != "" {
		named, err := reference.ParseNormalizedNamed(req.cache)
		if err != nil {
			return nil, fmt.Errorf("the farm-wide layer cache %s: %w", req.cache, err)
		}
		o.CacheFrom, o.CacheTo = []reference.Named{named}, []reference.Named{named}
	}
	p, err := Query(&o)
	if err != nil {
		return nil, err
	}
	if req.cache != "" {
		// The cache is the transfer registry, plain HTTP on the node's
		// 127.0.0.1, as with `podman build --tls-verify=false`.
		p.Set("tlsVerify", "false")
	}
	if err := cacheParamsFor(p, req.version); err != nil {
		return nil, err
	}
	if len(req.spec.Containerfiles) > 0 {
		files, err := json.Marshal(req.spec.Containerfiles)
		if err != nil {
			return nil, err
		}
		p.Set("dockerfile", string(files))
	}
	secrets := req.spec.Secrets
	if req.runMark != "" {
		secrets = append(slices.Clip(secrets), "id="+req.runMark+",src="+req.runMark)
	}
	if len(secrets) > 0 {
		secrets, err := json.Marshal(secrets)
		if err != nil {
			return nil, err
		}
		p.Add("secrets", string(secrets))
	}
	return p, nil
}
