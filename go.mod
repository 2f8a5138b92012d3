module github.com/trapemu/trapemu

go 1.26.8

require (
	github.com/elastic/go-seccomp-bpf v1.6.0
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
	gopkg.in/yaml.v3 v3.0.1
)
