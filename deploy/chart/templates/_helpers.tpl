{{/*
Names. fullname is the release name when it already contains the chart name (release "gpusched"
gives exactly the names of the plain manifests in deploy/), else "<release>-<chart>". Every object,
cluster-scoped ones included, is named from it, so a second release does not collide with the first.
*/}}
{{- define "gpusched.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpusched.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpusched.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; selectorLabels (immutable in a Deployment) are the stable subset. */}}
{{- define "gpusched.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpusched.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gpusched.labels" -}}
{{ include "gpusched.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "gpusched.chart" . }}
{{- end }}

{{- define "gpusched.operatorName" -}}
{{- printf "%s-operator" (include "gpusched.fullname" .) }}
{{- end }}

{{- define "gpusched.agentName" -}}
{{- printf "%s-agent" (include "gpusched.fullname" .) }}
{{- end }}

{{- define "gpusched.leaseName" -}}
{{- default (include "gpusched.operatorName" .) .Values.operator.leaseName }}
{{- end }}

{{- define "gpusched.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
