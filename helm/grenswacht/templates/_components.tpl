{{/* Names of the enabled workloads (components + probe variants), one per line. */}}
{{- define "grenswacht.enabledComponents" -}}
{{- range $component, $spec := .Values.components }}
{{- if $spec.enabled }}
{{ $component }}
{{- end }}
{{- end }}
{{- if .Values.probe.enabled }}
probe
{{- end }}
{{- if .Values.probe.scamper.enabled }}
probe-scamper
{{- end }}
{{- end -}}
