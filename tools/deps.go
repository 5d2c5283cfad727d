//go:build tools

package tools

import (
	_ "github.com/flosch/pongo2/v6"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	_ "gopkg.in/yaml.v3"
	_ "knative.dev/pkg/injection/sharedmain"
)
