// keda-scalers builds one of KEDA's own built-in scalers (pkg/scalers of the KEDA version the
// testbed builds) from a trigger given as JSON on stdin, asks it for its metric spec and for its
// metric and activity one or more times, and prints what it answered as JSON on stdout. The
// integration tests in tests/integration/keda/test_differences.py drive it against the testbed's
// brokers, to compare KEDA's answers with queue-scaler's for the same broker state.
//
// Input, one JSON object: type ("kafka" or "rabbitmq"), metadata and authParams (string maps, as
// in a ScaledObject's trigger and its TriggerAuthentication), calls (how many
// GetMetricsAndActivity calls on the one scaler, default 1), intervalMs (the pause between
// calls) and triggerIndex (default 0). Output, one JSON object: metricName, targetType and target
// (from GetMetricSpecForScaling), and calls, one {value, isActive} or {isActive, error} per call.
// A constructor error is "error" at the top level with no calls. Exit status 0 whenever the JSON
// was written; 2 when the input could not be read.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

type input struct {
	Type         string            `json:"type"`
	Metadata     map[string]string `json:"metadata"`
	AuthParams   map[string]string `json:"authParams"`
	Calls        int               `json:"calls"`
	IntervalMs   int               `json:"intervalMs"`
	TriggerIndex int               `json:"triggerIndex"`
}

type call struct {
	Value    *float64 `json:"value,omitempty"`
	IsActive bool     `json:"isActive"`
	Error    string   `json:"error,omitempty"`
}

type output struct {
	MetricName string   `json:"metricName,omitempty"`
	TargetType string   `json:"targetType,omitempty"`
	Target     *float64 `json:"target,omitempty"`
	Calls      []call   `json:"calls"`
	Error      string   `json:"error,omitempty"`
}

func build(ctx context.Context, in input) (scalers.Scaler, error) {
	config := &scalersconfig.ScalerConfig{
		ScalableObjectName:      "worker",
		ScalableObjectNamespace: "default",
		ScalableObjectType:      "ScaledObject",
		GlobalHTTPTimeout:       3 * time.Second,
		TriggerName:             "",
		TriggerType:             in.Type,
		TriggerMetadata:         in.Metadata,
		ResolvedEnv:             map[string]string{},
		AuthParams:              in.AuthParams,
		TriggerIndex:            in.TriggerIndex,
		TriggerUniqueKey:        fmt.Sprintf("default/worker/%d", in.TriggerIndex),
	}
	if config.AuthParams == nil {
		config.AuthParams = map[string]string{}
	}
	switch in.Type {
	case "kafka":
		return scalers.NewKafkaScaler(ctx, config)
	case "rabbitmq":
		return scalers.NewRabbitMQScaler(config)
	default:
		return nil, fmt.Errorf("unknown trigger type %q (kafka or rabbitmq)", in.Type)
	}
}

func run(in input) output {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := output{Calls: []call{}}
	scaler, err := build(ctx, in)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer func() { _ = scaler.Close(ctx) }()
	specs := scaler.GetMetricSpecForScaling(ctx)
	if len(specs) != 1 || specs[0].External == nil {
		out.Error = fmt.Sprintf("expected one external metric spec, got %d", len(specs))
		return out
	}
	external := specs[0].External
	out.MetricName = external.Metric.Name
	out.TargetType = string(external.Target.Type)
	switch {
	case external.Target.AverageValue != nil:
		target := external.Target.AverageValue.AsApproximateFloat64()
		out.Target = &target
	case external.Target.Value != nil:
		target := external.Target.Value.AsApproximateFloat64()
		out.Target = &target
	}
	calls := max(in.Calls, 1)
	for index := range calls {
		if index > 0 && in.IntervalMs > 0 {
			time.Sleep(time.Duration(in.IntervalMs) * time.Millisecond)
		}
		metrics, active, err := scaler.GetMetricsAndActivity(ctx, out.MetricName)
		switch {
		case err != nil:
			out.Calls = append(out.Calls, call{IsActive: active, Error: err.Error()})
		case len(metrics) != 1:
			out.Calls = append(out.Calls, call{IsActive: active,
				Error: fmt.Sprintf("expected one metric value, got %d", len(metrics))})
		default:
			value := metrics[0].Value.AsApproximateFloat64()
			out.Calls = append(out.Calls, call{Value: &value, IsActive: active})
		}
	}
	return out
}

func main() {
	logf.SetLogger(logr.Discard())
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "keda-scalers: reading the trigger JSON on stdin: %v\n", err)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(run(in)); err != nil {
		fmt.Fprintf(os.Stderr, "keda-scalers: writing the answer: %v\n", err)
		os.Exit(2)
	}
}
