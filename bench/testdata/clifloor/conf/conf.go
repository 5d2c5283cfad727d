// Package conf reads, with gopkg.in/yaml.v3 as the CLI does, the part of
// config.yaml and secrets.yaml that the CLI floors need.
package conf

import (
	"os"

	"gopkg.in/yaml.v3"
)

// file is the part of config.yaml and secrets.yaml a --get needs.
type file struct {
	Cicdstatemgr struct {
		Datasources struct {
			Redis struct {
				Host, Port, Username, Password string
			}
		}
	}
}

// Redis is the address and the credentials of the Redis datasource.
func Redis(configPath, secretsPath string) (addr, user, password string, err error) {
	var cfg, sec file
	for path, into := range map[string]*file{configPath: &cfg, secretsPath: &sec} {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", "", err
		}
		if err := yaml.Unmarshal(b, into); err != nil {
			return "", "", "", err
		}
	}
	r, s := cfg.Cicdstatemgr.Datasources.Redis, sec.Cicdstatemgr.Datasources.Redis
	return r.Host + ":" + r.Port, s.Username, s.Password, nil
}
