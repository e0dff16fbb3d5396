// Command kustomize-build prints what `kubectl apply -k DIR` applies: the
// objects kustomize builds from DIR, as a YAML stream. The tests compare
// it with the Helm chart's rendering, so that the two installs stay equal.
//
//	kustomize-build deploy/kubernetes
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kustomize-build DIR")
		os.Exit(2)
	}
	objs, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kustomize-build %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	out, err := objs.AsYaml()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kustomize-build %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}
