{{/* Names and labels shared by every object of the chart. */}}

{{- define "queue-scaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart name. */}}
{{- define "queue-scaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "queue-scaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "queue-scaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "queue-scaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "queue-scaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "queue-scaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "queue-scaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "queue-scaler.connectionsSecret" -}}
{{- default (printf "%s-connections" (include "queue-scaler.fullname" .)) .Values.connections.existingSecret }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the value given, or shutdownGrace rounded up plus 5 s for the
broker connections to close after the RPCs' grace. Either way it must exceed shutdownGrace, or
the kubelet kills the scaler while RPCs are still finishing.
*/}}
{{- define "queue-scaler.terminationGracePeriodSeconds" -}}
{{- $grace := float64 .Values.scaler.shutdownGrace }}
{{- $seconds := .Values.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $seconds }}
{{- $seconds = add (int (ceil $grace)) 5 }}
{{- end }}
{{- if le (float64 $seconds) $grace }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be greater than scaler.shutdownGrace (%v): the kubelet would kill the scaler while in-flight RPCs still have grace left" $seconds $grace) }}
{{- end }}
{{- int $seconds }}
{{- end }}

{{/*
The connections file (scaler/sources/connections.py reads it): one [connections.<name>] table per
entry of connections.named. Names and string values are written as JSON strings, which are valid
TOML basic strings (the same escapes); booleans and whole numbers as themselves.
*/}}
{{- define "queue-scaler.connectionsToml" -}}
# Named broker connections for queue-scaler (--connections-file), rendered by its Helm chart from
# the value connections.named. A trigger uses one with `connection: <name>`.
{{- range $name, $keys := .Values.connections.named }}

[connections.{{ $name | toJson }}]
source = {{ $keys.source | toJson }}
{{- range $key, $value := omit $keys "source" }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
