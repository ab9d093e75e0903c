package generator

import "runtime/debug"

// Version returns the version to report: the one set at build time if any,
// else the module version Go recorded, else "devel".
func Version(set string) string {
	if set != "" {
		return set
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/protoc-gen-eda/eda" {
				return dep.Version
			}
		}
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "devel"
}
