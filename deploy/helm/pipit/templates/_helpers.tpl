{{/* The labels every object of the install carries, as kustomize's do. */}}
{{- define "pipit.partOf" -}}
app.kubernetes.io/part-of: pipit
{{- end }}

{{/* The controller's pods: selected by name, labelled like the objects. */}}
{{- define "pipit.controllerLabels" -}}
app.kubernetes.io/name: pipit-controller
{{ include "pipit.partOf" . }}
{{- end }}
