if .state == null then "no verdict: no run of this scenario yet\n" | halt_error(2)
elif .state == "BLOCK" then "blocked: \(.incident // "incident being opened"): \(.reason)\n" | halt_error(1)
elif .last_run_error then "no verdict: the last run (\(.last_run_id)) gave none: \(.last_run_error)\n" | halt_error(2)
elif ($max_age_h | tonumber) > 0 and (now - (.updated_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601)) > ($max_age_h | tonumber) * 3600 then "no verdict: the last run (\(.last_run_id)) finished \(.updated_at), more than \($max_age_h) h ago\n" | halt_error(2)
else "open: \(.reason)\n" end
