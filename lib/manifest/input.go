package manifest

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/farm-build/farm/lib/platform"
	"github.com/farm-build/farm/lib/record"
)

// Read collects the image records on in and the error records to pass on;
// any other kind is bad input. stage names the reader in messages. When in
// ends without an end record (farm-build died part way), Read returns what
// did arrive and a *record.TruncatedError: the caller decides whether a
// list may be made of it (--allow-partial).
func Read(stage string, in io.Reader) ([]*record.Image, []*record.Error, error) {
	dec := record.NewDecoder(stage, in)
	var imgs []*record.Image
	var failures []*record.Error
	var truncated error
	for truncated == nil {
		rec, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, record.ErrTruncated) {
			truncated = err
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch r := rec.(type) {
		case *record.Image:
			imgs = append(imgs, r)
		case *record.Error:
			failures = append(failures, r)
		default:
			return nil, nil, fmt.Errorf("%s: stdin line %d: a %s record; %s reads image records (from farm-build)", stage, dec.Line(), rec.Kind(), stage)
		}
	}
	if truncated != nil && len(imgs) == 0 {
		return nil, failures, truncated
	}
	if len(imgs) == 0 && len(failures) > 0 {
		return nil, failures, fmt.Errorf("%s: no image records on stdin, only errors: %s; fix them and run the pipeline again", stage, DescribeFailures(failures))
	}
	if err := Check(imgs); err != nil {
		return nil, failures, fmt.Errorf("%s: %w", stage, err)
	}
	return imgs, failures, truncated
}

// DescribeFailures says which platforms failed upstream, and why.
func DescribeFailures(failures []*record.Error) string {
	var parts []string
	for _, f := range failures {
		what := f.Platform
		if what == "" {
			what = f.Stage
		}
		if p, err := platform.Canonical(what); err == nil {
			what = p
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", what, f.Error))
	}
	return strings.Join(parts, "; ")
}

// TagOf is the list name the images agree on: farm-build's -t.
func TagOf(imgs []*record.Image) (string, error) {
	tag := imgs[0].Tag
	for _, img := range imgs[1:] {
		if img.Tag != tag {
			return "", fmt.Errorf("the image records carry different tags (%s, %s)", tag, img.Tag)
		}
	}
	if tag == "" {
		return "", errors.New("the image records carry no tag")
	}
	return tag, nil
}
