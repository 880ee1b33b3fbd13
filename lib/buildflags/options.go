package buildflags

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	buildahDefine "github.com/containers/buildah/define"
	buildahCLI "github.com/containers/buildah/pkg/cli"
	"github.com/containers/buildah/pkg/parse"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/types"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/containers/podman/v4/pkg/env"
)

// Options turns the set into the build options podman 4.9's client makes
// from the same command line (cmd/podman/common.ParseBuildOpts and
// buildFlagsWrapperToOptions), with podman's checks and error wording.
// What only makes sense for a local build (log files, runtime paths,
// stdin) is left out: podman-remote does not send it either.
func (s *Set) Options() (*entities.BuildOptions, error) {
	if err := s.conflicts(); err != nil {
		return nil, err
	}
	w := s.w
	common, err := parse.CommonBuildOptionsFromFlagSet(s.fs, s.flag)
	if err != nil {
		return nil, err
	}
	pull, err := s.pullPolicy()
	if err != nil {
		return nil, err
	}
	args, err := s.buildArgs()
	if err != nil {
		return nil, err
	}
	layers, squash := s.squash()
	nsValues, networkPolicy, err := parse.NamespaceOptionsFromFlagSet(s.fs, s.flag)
	if err != nil {
		return nil, err
	}
	isolation, err := parse.IsolationOption(w.Isolation)
	if err != nil {
		return nil, err
	}
	usernsOption, idmapping, err := parse.IDMappingOptionsFromFlagSet(s.fs, s.fs, s.flag)
	if err != nil {
		return nil, err
	}
	format, err := imageFormat(w.Format)
	if err != nil {
		return nil, err
	}
	cacheFrom, cacheTo, cacheTTL, err := s.cacheOptions()
	if err != nil {
		return nil, err
	}
	jobs := w.Jobs
	opts := buildahDefine.BuildOptions{
		AddCapabilities: w.CapAdd, Annotations: w.Annotation, Args: args,
		CacheFrom: cacheFrom, CacheTo: cacheTo, CacheTTL: cacheTTL,
		CommonBuildOpts: common, ConfigureNetwork: networkPolicy, CPPFlags: w.CPPFlags,
		Devices: w.Devices, DropCapabilities: w.CapDrop,
		Envs:                    buildahCLI.LookupEnvVarReferences(w.Envs, os.Environ()),
		ForceRmIntermediateCtrs: w.ForceRm, From: w.From, GroupAdd: w.GroupAdd,
		IDMappingOptions: idmapping, Isolation: isolation, Jobs: &jobs,
		Labels: w.Label, LayerLabels: w.LayerLabel, Layers: layers, LogRusage: w.LogRusage,
		NamespaceOptions: append(nsValues, usernsOption...), NoCache: w.NoCache,
		OSFeatures: w.OSFeatures, OSVersion: w.OSVersion, OutputFormat: format,
		PullPolicy: pull, Quiet: w.Quiet, RemoveIntermediateCtrs: w.Rm,
		Squash: squash, Target: w.Target, UnsetEnvs: w.UnsetEnvs, UnsetLabels: w.UnsetLabels,
		SystemContext: &types.SystemContext{},
	}
	if w.IgnoreFile != "" {
		if opts.Excludes, err = readIgnoreFile(w.IgnoreFile); err != nil {
			return nil, err
		}
	}
	if s.Changed("timestamp") {
		t := time.Unix(w.Timestamp, 0).UTC()
		opts.Timestamp = &t
	}
	if s.Changed("skip-unused-stages") {
		opts.SkipUnusedStages = types.NewOptionalBool(w.SkipUnusedStages)
	}
	return &entities.BuildOptions{BuildOptions: opts}, nil
}

// conflicts are the checks podman's ParseBuildOpts makes before anything
// else, in its words.
func (s *Set) conflicts() error {
	if (s.Changed("squash") && s.Changed("layers")) || (s.Changed("squash-all") && s.Changed("squash")) {
		return errors.New("cannot specify --squash with --layers and --squash-all with --squash")
	}
	if s.w.Network == "none" {
		for _, f := range []string{"dns", "dns-option", "dns-search"} {
			if s.Changed(f) {
				return fmt.Errorf("the --%s option cannot be used with --network=none", f)
			}
		}
	}
	if s.Changed("network") && s.w.Network != "host" && s.w.Isolation == buildahDefine.IsolationChroot.String() {
		return fmt.Errorf("cannot set --network other than host with --isolation %s", s.w.Isolation)
	}
	return nil
}

func (s *Set) pullPolicy() (buildahDefine.PullPolicy, error) {
	n := 0
	for _, f := range []string{"pull", "pull-always", "pull-never"} {
		if s.Changed(f) {
			n++
		}
	}
	if n > 1 {
		return 0, errors.New("can only set one of 'pull' or 'pull-always' or 'pull-never'")
	}
	w := s.w
	pull := strings.ToLower(strings.TrimSpace(w.Pull))
	switch pull {
	case "missing", "ifmissing", "always", "never", "true", "false", "newer", "ifnewer":
	default:
		// podman 4.9 takes any other word as "missing"; farm says so.
		return 0, fmt.Errorf("--pull %q: want always, missing, never or newer (or true, false)", w.Pull)
	}
	// podman's mapping, word for word: "false" and "newer" are sent as
	// missing.
	policy := buildahDefine.PullIfMissing
	if s.Changed("pull") && pull == "true" {
		policy = buildahDefine.PullAlways
	}
	if w.PullAlways || pull == "always" {
		policy = buildahDefine.PullAlways
	}
	if w.PullNever || pull == "never" {
		policy = buildahDefine.PullNever
	}
	return policy, nil
}

// buildArgs reads --build-arg-file, then --build-arg; an ARG without a
// value takes it from the environment, or is dropped, as in podman.
func (s *Set) buildArgs() (map[string]string, error) {
	args := map[string]string{}
	for _, file := range s.w.BuildArgFile {
		fargs, err := env.ParseFile(file)
		if err != nil {
			return nil, err
		}
		for k, v := range fargs {
			args[k] = v
		}
	}
	for _, arg := range s.w.BuildArg {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				delete(args, k)
				continue
			}
		}
		args[k] = v
	}
	return args, nil
}

// squash is podman's translation of --squash and --squash-all for buildah:
// --squash keeps the base image's layers and squashes the new ones (layers
// off), --squash-all squashes everything.
func (s *Set) squash() (layers, squash bool) {
	layers, squash = s.w.Layers, s.w.Squash
	if s.Changed("squash") && squash {
		squash, layers = false, false
	}
	if s.Changed("squash-all") {
		squash = true
		if !s.Changed("layers") {
			layers = false
		}
	}
	return layers, squash
}

func imageFormat(f string) (string, error) {
	f = strings.ToLower(f)
	switch {
	case strings.HasPrefix(f, buildahDefine.OCI):
		return buildahDefine.OCIv1ImageManifest, nil
	case strings.HasPrefix(f, buildahDefine.DOCKER):
		return buildahDefine.Dockerv2ImageManifest, nil
	}
	return "", fmt.Errorf("unrecognized image type %q", f)
}

func (s *Set) cacheOptions() (from, to []reference.Named, ttl time.Duration, err error) {
	w := s.w
	if s.Changed("cache-to") {
		if to, err = parse.RepoNamesToNamedReferences(w.CacheTo); err != nil {
			return nil, nil, 0, fmt.Errorf("unable to parse value provided `%s` to --cache-to: %w", w.CacheTo, err)
		}
	}
	if s.Changed("cache-from") {
		if from, err = parse.RepoNamesToNamedReferences(w.CacheFrom); err != nil {
			return nil, nil, 0, fmt.Errorf("unable to parse value provided `%s` to --cache-from: %w", w.CacheFrom, err)
		}
	}
	if s.Changed("cache-ttl") {
		if ttl, err = time.ParseDuration(w.CacheTTL); err != nil {
			return nil, nil, 0, fmt.Errorf("unable to parse value provided %q as --cache-ttl: %w", w.CacheTTL, err)
		}
	}
	return from, to, ttl, nil
}

// readIgnoreFile reads --ignorefile as podman does: every line that is not
// empty or a comment is a pattern.
func readIgnoreFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ignorefile: %w", err)
	}
	var excludes []string
	for _, e := range strings.Split(string(data), "\n") {
		if len(e) == 0 || e[0] == '#' {
			continue
		}
		excludes = append(excludes, e)
	}
	return excludes, nil
}

// IgnoreFile is the --ignorefile given ("" for none).
func (s *Set) IgnoreFile() string { return s.w.IgnoreFile }
