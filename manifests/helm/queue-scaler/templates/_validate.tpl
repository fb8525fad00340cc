{{/*
Checks across values, which values.schema.json (types, choices, unknown keys) cannot say as
clearly. Renders nothing; a failure stops helm install/template with the message. Included by
deployment.yaml, so every render runs it.
*/}}
{{- define "queue-scaler.validate" -}}
{{- if and .Values.connections.existingSecret (or .Values.connections.named .Values.connections.files) }}
{{- fail "connections.existingSecret names your own Secret: leave connections.named and connections.files empty (put the connections in that Secret's connections.toml)" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: a Secret holding tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.enabled) }}
{{- fail "tls.clientCA.enabled (mTLS) needs tls.enabled: client certificates are checked only on a TLS port" }}
{{- end }}
{{- with .Values.podDisruptionBudget }}
{{- if and .enabled (kindIs "invalid" .minAvailable) (kindIs "invalid" .maxUnavailable) }}
{{- fail "podDisruptionBudget.enabled needs minAvailable or maxUnavailable" }}
{{- end }}
{{- end }}
{{- if eq (int .Values.scaler.grpcPort) (int .Values.scaler.httpPort) }}
{{- fail "scaler.grpcPort and scaler.httpPort must differ" }}
{{- end }}
{{- $_ := include "queue-scaler.terminationGracePeriodSeconds" . }}
{{- end }}
