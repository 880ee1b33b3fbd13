package transfer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/docker/distribution/configuration"
	dcontext "github.com/docker/distribution/context"
	"github.com/docker/distribution/registry/handlers"
	"github.com/docker/distribution/registry/storage"
	"github.com/docker/distribution/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

// NewRegistryHandler is an OCI distribution registry storing in dir:
// docker/distribution v2.8's, the code Debian's docker-registry 2.8 runs, so
// a cache written by either serves the other. No auth (it holds nothing but
// what this user's own nodes push, and only they reach it, through their
// forwards), no deletes, no redirects, no upload purger (purgeUploads does
// that at start). The configuration is built here, never parsed: REGISTRY_*
// variables in the environment cannot change it.
func NewRegistryHandler(ctx context.Context, dir string, log *slog.Logger) (h http.Handler, err error) {
	conf := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": dir},
			"delete":      configuration.Parameters{"enabled": false},
			"redirect":    configuration.Parameters{"disable": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[interface{}]interface{}{"enabled": false}},
		},
	}
	conf.HTTP.Secret = randomHex(32)
	conf.HTTP.RelativeURLs = true
	conf.HTTP.Headers = http.Header{"X-Content-Type-Options": {"nosniff"}}
	// NewApp panics on a configuration it cannot use.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry on %s: %v", dir, p)
		}
	}()
	// The registry lives as long as the run, not as the request that
	// started it; its log goes to farm's at debug level.
	logger := registryLogger(log)
	app := handlers.NewApp(dcontext.WithLogger(context.WithoutCancel(ctx), logger), conf)
	// A request's log goes to the logger in its own context, else to
	// logrus's global one: give every request ours.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.ServeHTTP(w, r.WithContext(dcontext.WithLogger(r.Context(), logger)))
	}), nil
}

// registryLogger turns the registry's logrus lines into farm debug records.
func registryLogger(log *slog.Logger) dcontext.Logger {
	l := logrus.New()
	l.SetLevel(logrus.InfoLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.Debug("transfer registry", "log", sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	l.SetOutput(pw)
	return logrus.NewEntry(l)
}

// collectGarbage removes the blobs no manifest in dir uses, as
// `docker-registry garbage-collect` does.
func collectGarbage(ctx context.Context, dir string) error {
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100})
	reg, err := storage.NewRegistry(ctx, d)
	if err != nil {
		return err
	}
	return storage.MarkAndSweep(ctx, d, reg, storage.GCOpts{})
}
