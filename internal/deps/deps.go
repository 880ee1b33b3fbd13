package deps

import (
	_ "github.com/containers/common/libimage/platform"
	_ "github.com/containers/common/pkg/config"
	_ "github.com/containers/image/v5/types"
	_ "github.com/containers/podman/v4/pkg/bindings"
	_ "github.com/containers/podman/v4/pkg/bindings/images"
	_ "github.com/containers/podman/v4/pkg/bindings/system"
	_ "github.com/klauspost/pgzip"
	_ "github.com/urfave/cli/v2"
	_ "github.com/vbauerster/mpb/v8"
)
