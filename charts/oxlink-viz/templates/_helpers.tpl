{{- /*
Shared pieces of the viz objects. Like the control-plane chart, this chart sticks to the small
subset of Go templates and Sprig functions that `oxlink viz install` renders too.
*/ -}}

{{- /* The labels every viz object carries, as Linkerd viz's do. */ -}}
{{- define "viz.labels" -}}
linkerd.io/extension: viz
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
