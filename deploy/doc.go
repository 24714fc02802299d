// Package deploy holds the tests of the deployment files: the root
// Dockerfile, the Compose stack in deploy/compose and the Kubernetes
// manifests in deploy/k8s. No Docker engine or cluster runs on the
// development and CI machines, so each file is loaded with the library its
// tool uses (compose-go, kustomize) and checked against the rules the
// operations guide (docs/operations.md) states. The package has no code of
// its own; it is a package so that the heavy libraries those tests need
// are compiled only for this package's tests.
package deploy
