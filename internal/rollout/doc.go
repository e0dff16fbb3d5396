// Package rollout is the contract at the centre of pipit: the words the
// engine and the runtimes speak (operator commands, what was observed,
// health, the actions decided) and the ports through which a runtime plugs
// in what differs between standalone and Kubernetes (the target, the
// router, the meter, the store, the clock).
//
// It depends only on api/v1alpha1. The engine and every family (target,
// router, metric, hook, notify, proxy, store) point inward to it; the
// runtimes wire implementations to its ports. A family's registry (a kind
// name turned into an implementation) lives with that family or in the
// wiring, never here.
package rollout
