//go:build tools

// Package helmbin only pins the command built from this module.
package helmbin

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
