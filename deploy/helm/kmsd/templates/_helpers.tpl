{{/* Chart name, shortened to the 63 characters of a DNS label. */}}
{{- define "kmsd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "kmsd.fullname" -}}
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

{{- define "kmsd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kmsd.labels" -}}
helm.sh/chart: {{ include "kmsd.chart" . }}
{{ include "kmsd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kmsd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmsd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kmsd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kmsd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the PostgreSQL DSN, and its key. */}}
{{- define "kmsd.dbSecret" -}}
{{- if .Values.database.dsn }}
{{- printf "%s-db" (include "kmsd.fullname" .) }}
{{- else }}
{{- required "set database.existingSecret (a Secret with the PostgreSQL DSN) or database.dsn" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "kmsd.dbSecretKey" -}}
{{- if .Values.database.dsn }}dsn{{ else }}{{ required "database.existingSecretKey" .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{/* The Secret holding the dashboard token, and its key. */}}
{{- define "kmsd.authSecret" -}}
{{- default (printf "%s-dashboard" (include "kmsd.fullname" .)) .Values.dashboard.auth.existingSecret }}
{{- end }}

{{- define "kmsd.authSecretKey" -}}
{{- if .Values.dashboard.auth.existingSecret }}{{ required "dashboard.auth.existingSecretKey" .Values.dashboard.auth.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/*
The dashboard token of the Secret the chart creates: dashboard.auth.token,
else the token already stored (kept across upgrades), else a new random one.
*/}}
{{- define "kmsd.authToken" -}}
{{- if .Values.dashboard.auth.token }}
{{- .Values.dashboard.auth.token }}
{{- else }}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "kmsd.authSecret" .) }}
{{- if and $old $old.data (index $old.data "token") }}
{{- index $old.data "token" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}
